"""COMPRESS_HOME and COMPRESS_CHROMIUM: where the browser runtimes, the TF.js converter and Chromium are found.

Each is read when it is used, not at import, and every "missing" error names the setting.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.core import chromium
from compressor.core.errors import CompressError
from exporters import tfjs
from exporters.onnx import int8

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_settings(monkeypatch):
    for name in ("COMPRESS_HOME", "COMPRESS_CHROMIUM", "COMPRESS_TFJS_CONVERTER", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)


def test_home_is_the_checkout_when_running_from_it(no_settings):
    assert chromium.home() == ROOT
    assert chromium.node_modules() == ROOT / "node_modules"
    assert tfjs.converter() == ROOT / ".venv-tfjs" / "bin" / "tensorflowjs_converter"


def test_home_of_an_installed_package_is_the_user_data_folder(no_settings, monkeypatch, tmp_path):
    monkeypatch.setattr(chromium, "ROOT", tmp_path / "site-packages")  # what an installed wheel sees
    monkeypatch.setenv("HOME", str(tmp_path))
    assert chromium.home() == tmp_path / ".local" / "share" / "edge-compress"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert chromium.home() == tmp_path / "data" / "edge-compress"


def test_compress_home_moves_every_asset_and_is_read_per_call(no_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("COMPRESS_HOME", str(tmp_path))
    assert chromium.node_modules() == tmp_path / "node_modules"
    assert int8.ort_web_dist() == tmp_path / "node_modules" / "onnxruntime-web" / "dist"
    assert tfjs.converter() == tmp_path / ".venv-tfjs" / "bin" / "tensorflowjs_converter"
    monkeypatch.setenv("COMPRESS_TFJS_CONVERTER", "/opt/tfjs/converter")
    assert tfjs.converter() == Path("/opt/tfjs/converter")
    monkeypatch.setenv("COMPRESS_HOME", "~/assets")
    assert chromium.home() == Path.home() / "assets"


def test_chromium_is_debians_unless_set(no_settings, monkeypatch, tmp_path):
    assert chromium.chromium_path() == Path("/usr/bin/chromium")
    monkeypatch.setenv("COMPRESS_CHROMIUM", str(tmp_path / "chrome"))
    assert chromium.chromium_path() == tmp_path / "chrome"
    with pytest.raises(CompressError, match=r"chrome not found; set COMPRESS_CHROMIUM .*make setup"), \
            chromium.chromium():
        pass


def test_missing_assets_name_the_setting(no_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("COMPRESS_HOME", str(tmp_path))
    hint = r"`make setup` \(a checkout\) or `COMPRESS_HOME=" + str(tmp_path) + r" scripts/setup\.sh --browser"
    with pytest.raises(CompressError, match=r"browser runtime file .* is missing; run " + hint):
        chromium.copy_runtime("ort", tmp_path / "out")
    with pytest.raises(CompressError, match=r"TF\.js converter .* is missing; run " + hint):
        tfjs.convert_saved_model(tmp_path, tmp_path / "js")
    with pytest.raises(CompressError, match=r"onnxruntime-web check needs node and .*; run " + hint):
        int8.run_in_ort_web(tmp_path / "m.onnx", np.zeros((1, 4), np.float32))
