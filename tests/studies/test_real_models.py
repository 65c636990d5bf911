"""studies.real_models: which artifact a failed run names, and a --quick run's table (tiny ResNet-18)."""
from __future__ import annotations

import json

import pytest

from studies.real_models import TARGETS, TFLITE_VARIANTS, failed_artifact, main, without


def test_the_failing_artifact_is_read_from_the_error_and_dropped():
    assert failed_artifact("parity check failed for tflite:float16 in ai-edge-litert (max abs diff 0.03 > 0.01)") \
        == "tflite:float16"
    assert failed_artifact("tflite int8 cannot meet the accuracy budget (drop <= 1.0 points)") == "tflite:int8"
    assert failed_artifact("parity check failed for web-bundle:ort in Chromium") == "web-bundle:ort"
    assert failed_artifact("onnx2tf failed") is None
    targets, variants = list(TARGETS), list(TFLITE_VARIANTS)
    assert without("tflite:int8", targets, variants) == (targets, ["float32", "float16", "dynamic-int8"])
    assert without("tflite:float32", targets, ["float32"]) == (["onnx", "tfjs", "onnx-web"], [])
    assert without("web-bundle:tfjs", targets, variants)[0] == ["onnx", "tflite", "onnx-web"]
    assert without("onnx-web:float32", targets, variants)[0] == ["onnx", "tflite", "tfjs"]


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.tflite
@pytest.mark.browser
def test_quick_run_prints_one_table_with_latency_and_conversion(tmp_path, capsys):
    assert main(["--quick", "--models", "resnet18", "--keep", str(tmp_path), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ") and "GFLOP/s" in out and "| resnet18 | onnx:float32 |" in out
    rows = {r["artifact"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert {"onnx:float32", "tflite:float32", "tfjs:float32", "onnx-web:float32"} <= set(rows)
    onnx = rows["onnx:float32"]
    assert onnx["parity"] == "ok" and onnx["convert_s"] > 0 and onnx["size_mb"] > 0
    assert onnx["ms_1t"] > 0 and onnx["rss_1t_mb"] > 0 and 0 < onnx["peak_share_1t"] < 1.5
    assert rows["tflite:float32"]["transposes"] is not None and rows["tfjs:float32"]["parity"] == "ok"
    run = json.loads((tmp_path / "r.json").read_text())["runs"][0]
    assert run["rerun_cache"] == "hit" and run["rerun_s"] < run["wall_s"]  # unchanged: the run cache
    assert {"ort", "ort_no_nchwc", "litert_fp32"} == set(run["gap"]["1"])
