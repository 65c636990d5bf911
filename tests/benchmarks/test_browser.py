"""Browser runs (TF.js, onnxruntime-web) in headless Debian Chromium: outputs must match the CPU."""
import numpy as np
import pytest

from benchmarks import bench
from benchmarks.discover import discover
from benchmarks.harness import PRESETS
from benchmarks.platforms import PlatformOptions

from .conftest import tfjs_affine

pytestmark = pytest.mark.browser


def _rows(result, setting):
    return [r for r in result["rows"] if r["setting"] == setting]


def test_onnx_in_onnxruntime_web_matches_onnxruntime_cpu(models):
    items, _ = discover([models["base"]])
    opts = bench.BenchOptions(targets=("browser",), bounds=PRESETS["quick"], peak=False,
                              platform_options=PlatformOptions(browser_backends=()))
    (row,) = bench.run(items, opts)["rows"]
    assert row["setting"] == "ort-web-wasm" and row["counted"], row
    assert row["parity"]["passed"] and row["parity"]["max_abs_diff"] < 1e-4
    assert row["samples_ms"] and row["peak_js_heap_bytes"] > 0 and row["cross_origin_isolated"]


def test_tfjs_backends_and_emulated_phone_match_cpu(tmp_path):
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((16, 10)).astype(np.float32), rng.standard_normal(10).astype(np.float32)
    items, _ = discover([tfjs_affine(tmp_path / "affine_tfjs", w, b)])
    opts = bench.BenchOptions(targets=("browser", "mobile"), bounds=PRESETS["quick"], peak=False,
                              platform_options=PlatformOptions(browser_backends=("wasm", "cpu")))
    # TF.js against the same function computed on the CPU (numpy)
    res = bench.run(items, opts, reference=lambda x: x @ w + b)
    for setting, backend in (("tfjs-wasm", "wasm"), ("tfjs-cpu", "cpu"), ("tfjs-wasm@pixel-7x4", "wasm")):
        (row,) = _rows(res, setting)
        assert row["backend"] == backend and row["counted"] and row["parity"]["max_abs_diff"] < 1e-4, row
    (phone,) = _rows(res, "tfjs-wasm@pixel-7x4")
    assert "Pixel 7" in phone["user_agent"] and phone["device"]["cpu_throttle"] == 4
