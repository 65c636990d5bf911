"""The Python API: the README's snippet runs as written, and the error kinds a caller catches."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import compressor
from compressor import BudgetError, CompressError, ConverterError, ParityError, compress, load_manifest
from tests.conftest import ROOT


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.slow
def test_readme_snippet_runs_and_writes_a_manifest(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", readme_snippet()], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600, env=env, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    names = [line.split()[0] for line in p.stdout.splitlines()]
    assert names[:2] == ["onnx:float32", "onnx:int8"]
    m = load_manifest(tmp_path / "api-out")
    assert m.artifact("onnx:int8").path.is_file() and m.artifact("onnx:int8").data["accuracy"] > 0.9


def test_error_kinds_carry_their_exit_codes():
    assert [e.exit_code for e in (CompressError, ParityError, BudgetError, ConverterError)] == [2, 3, 4, 5]
    assert all(issubclass(e, CompressError) for e in (ParityError, BudgetError, ConverterError))


def test_unknown_option_and_bad_manifest_are_one_line_errors(tmp_path):
    with pytest.raises(CompressError, match="known options: model, targets"):
        compress("demo", out=tmp_path / "o", colour="blue")
    with pytest.raises(CompressError, match="cannot read"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(CompressError, match="not a manifest"):
        load_manifest(tmp_path)


def test_import_is_light_and_versioned():
    code = "import compressor, sys; print(compressor.__version__); print(sorted(m for m in ('torch', 'onnx', " \
           "'onnxruntime', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.split("\n")
    assert out[0] == compressor.__version__ and out[1] == "[]"


def test_manifest_lookup_names_the_known_artifacts(tmp_path):
    (tmp_path / "manifest.json").write_text('{"artifacts": [{"name": "onnx:float32", "path": "model.onnx"}]}')
    m = load_manifest(tmp_path / "manifest.json")
    assert m.artifact("onnx:float32").path == Path(tmp_path / "model.onnx")
    with pytest.raises(CompressError, match="known: onnx:float32"):
        m.artifact("tflite:int8")
