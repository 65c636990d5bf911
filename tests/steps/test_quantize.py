"""`compress demo --quantize int8`: the quantized artifact lands in manifest.json with its figures."""
from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_pipeline_adds_int8_with_accuracy_drop_and_size(tmp_path):
    out = tmp_path / "out"
    r = run_cli("demo", "--quantize", "int8", "--calib-method", "entropy", "--max-accuracy-drop", "1.0",
                "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    arts = {a["name"]: a for a in m["artifacts"]}
    assert set(arts) == {"onnx:float32", "onnx:int8"}
    q, f = arts["onnx:int8"], arts["onnx:float32"]
    assert (out / q["path"]).is_file() and q["size_bytes"] == (out / q["path"]).stat().st_size
    assert q["parity"]["passed"] and q["parity"]["max_abs_threshold"] is None
    assert q["accuracy_drop_points"] <= 1.0 and q["top1_agreement"] >= 0.99
    assert 0 < q["accuracy"] <= 1 and q["held_out_samples"] == m["data"]["test"]
    assert f["accuracy"] is not None and f["accuracy_drop_points"] == 0.0
    assert 0 < q["size_ratio_vs_float32"] < 0.5
    assert q["quantization"]["settings"]["calib_method"] == "entropy"
    sec = m["quantization"]
    assert sec["cpu_int8_scheme"]["scheme"] in ("u8s8", "u8u8", "s8s8") and sec["cpu_int8_scheme"]["reason"]
    assert sec["artifacts"] == ["onnx:int8"] and "quantize" in m["step_seconds"]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no scratch left


@pytest.mark.heavy
@pytest.mark.slow
def test_fp16_is_checked_against_a_zero_budget(tmp_path):
    out = tmp_path / "out"
    r = run_cli("demo", "--quantize", "fp16", "--max-accuracy-drop", "0", "--out", out)
    # float16 keeps the demo teacher's accuracy: the run passes; the budget is checked, not assumed
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert [a["name"] for a in m["artifacts"]] == ["onnx:float32", "onnx:float16"]
    assert m["artifacts"][1]["accuracy_drop_points"] <= 0.0


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.tflite
def test_qat_with_a_tflite_target_makes_the_tflite_int8_only(tmp_path):
    out = tmp_path / "out"
    r = run_cli("demo", "--quantize", "qat", "--target", "tflite", "--variants", "float32", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    arts = {a["name"]: a for a in m["artifacts"]}
    assert set(arts) == {"tflite:float32", "tflite:qat-int8"}  # the QAT ONNX was a means, not a target
    q = arts["tflite:qat-int8"]
    assert (out / q["path"]).is_file() and q["path"].startswith("tflite/")
    assert q["parity"]["passed"] and q["accuracy_drop_points"] <= 1.0 and q["top1_agreement_vs_qat_onnx"] >= 0.95
    assert 0 < q["size_ratio_vs_float32"] < 0.5
    assert m["quantization"]["artifacts"] == ["tflite:qat-int8"]
    assert not list(out.glob("*.onnx"))


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.browser
def test_int8_with_onnx_web_adds_a_checked_int8_bundle(tmp_path):
    out = tmp_path / "out"
    r = run_cli("demo", "--quantize", "int8", "--target", "onnx-web", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    arts = {a["name"]: a for a in m["artifacts"]}
    assert {"onnx-web:float32", "web-bundle:ort", "onnx:int8-web", "onnx-web:int8", "web-bundle:ort-int8"} <= set(arts)
    model, web = arts["onnx-web:int8"], arts["web-bundle:ort-int8"]
    assert model["path"] == "web-ort-int8/model/model.onnx" and model["parity"]["passed"]
    assert "in Chromium" in model["parity"]["runtime"] and model["parity"]["top1_agreement"] >= 0.95
    assert web["parity"]["passed"] and web["page_check"]["top1"] == web["page_check"]["expected_top1"]
    facts = json.loads((out / "web-ort-int8" / "manifest.json").read_text())
    assert facts["variant"] == "int8" and facts["model_parity"]["passed"]
    assert "model/model.onnx" in {f["path"] for f in facts["files"]}
    assert (out / "web-ort-int8" / "runtime").is_dir() and (out / "web-ort-int8" / "index.html").is_file()
