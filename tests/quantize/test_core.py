"""quantize() on the demo teacher: static int8 within budget, fallbacks, fp16, dynamic, browser-safe int8."""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from compressor.core.errors import CompressError
from compressor.core.files import sizes
from compressor.data import Dataset, Splits
from compressor.quantize import DynamicInt8, Fp16, StaticInt8, quantize
from exporters.onnx.int8 import op_types

INTEGER_OPS = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}


def weight_types(path) -> set[int]:
    m = onnx.load(str(path))
    return {i.data_type for i in m.graph.initializer if len(i.dims) >= 2}


def test_static_int8_meets_the_budget_on_the_demo_teacher(float_onnx, splits, reference, tmp_path):
    q = quantize(float_onnx, StaticInt8(), splits=splits, workdir=tmp_path, reference=reference)
    a, p = q.artifact, q.artifact.parity
    assert (a.format, a.variant, a.path.name) == ("onnx", "int8", "model.int8.onnx")
    assert p.passed and p.max_abs_threshold is None  # judged on agreement, not absolute difference
    assert p.n_samples == len(splits.test)  # the whole held-out split
    assert p.accuracy_drop_points <= 1.0 and p.top1_agreement >= 0.99
    assert a.extra["accuracy_drop_points"] == p.accuracy_drop_points and a.extra["accuracy"] == p.accuracy
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(op_types(a.path)) and not INTEGER_OPS & set(op_types(a.path))
    assert weight_types(a.path) == {onnx.TensorProto.INT8}  # u8s8: int8 weights, per channel
    assert a.path.stat().st_size <= 0.30 * sizes(float_onnx)["size_bytes"]  # 65k parameters
    info = a.extra["quantization"]
    assert info["int8_scheme"]["reason"] and info["chosen_by"] == "initial" and not info["fell_back"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.int8.onnx"]  # no trial files left


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_other_calibration_methods(method, float_onnx, splits, reference, tmp_path):
    q = quantize(float_onnx, StaticInt8(calib_method=method, calib_samples=100), splits=splits,
                 workdir=tmp_path, reference=reference)
    assert q.artifact.parity.passed
    assert q.info["settings"]["calib_method"] == method and q.info["calib_samples_used"] == 96


def weak_calibration(splits: Splits) -> Splits:
    """Calibration data 20x dimmer than real inputs: every activation range comes out far too narrow."""
    t = splits.train
    return Splits(Dataset(t.x * 0.05, t.y, t.classes, "dim"), splits.val, splits.test)


def test_fallbacks_trigger_under_a_tight_budget_and_weak_calibration(float_onnx, splits, reference, tmp_path):
    cfg = StaticInt8(max_accuracy_drop=0.0, min_agreement=0.99)
    try:
        q = quantize(float_onnx, cfg, splits=weak_calibration(splits), workdir=tmp_path, reference=reference)
    except CompressError as e:  # nothing fitted: the error carries the table of every trial
        assert "tried:" in str(e) and "more calibration samples" in str(e)
        assert not any(tmp_path.glob("*.onnx"))
        return
    assert q.info["fell_back"] and len(q.trials) > 1 and q.trials[0].ok is False
    assert q.artifact.parity.accuracy_drop_points <= 0.0 and q.artifact.parity.top1_agreement >= 0.99
    steps = [t.step for t in q.trials]
    assert steps[:2] == ["initial", "more calibration samples"]
    assert q.info["chosen_by"] == steps[-1]
    if q.info["chosen_by"] == "sensitive layers in float":
        kept = q.info["settings"]["float_layers"]
        assert kept and [s["layer"] for s in q.info["sensitivity"]][:len(kept)] == kept
        assert "Conv" in op_types(q.artifact.path) or "Gemm" in op_types(q.artifact.path)


def test_an_impossible_budget_fails_with_the_table(float_onnx, splits, reference, tmp_path):
    cfg = StaticInt8(max_accuracy_drop=0.0, min_agreement=1.0, max_float_layers=0)
    with pytest.raises(CompressError) as e:
        quantize(float_onnx, cfg, splits=weak_calibration(splits), workdir=tmp_path, reference=reference)
    msg = str(e.value)
    assert "cannot meet the accuracy budget" in msg and "over budget" in msg
    rows = [line for line in msg.splitlines() if line[:1].isdigit()]
    assert len(rows) >= 8  # initial, 2 x more samples, 2 other methods, per-tensor + 3 schemes
    assert not any(tmp_path.glob("*.onnx")) and not any(tmp_path.glob(".*"))


def test_no_fallback_when_disabled(float_onnx, splits, reference, tmp_path):
    with pytest.raises(CompressError, match=r"tried:\n.*\n1 +initial"):
        quantize(float_onnx, StaticInt8(fallback=False, max_accuracy_drop=0.0, min_agreement=1.0),
                 splits=weak_calibration(splits), workdir=tmp_path, reference=reference)


def test_fp16(float_onnx, splits, reference, tmp_path):
    q = quantize(float_onnx, Fp16(), splits=splits, workdir=tmp_path, reference=reference)
    a = q.artifact
    assert a.variant == "float16" and a.parity.passed and a.parity.max_abs_threshold is not None
    assert a.parity.top1_agreement >= 0.99 and a.inputs[0].dtype == "float32"  # keep_io_types
    assert onnx.TensorProto.FLOAT16 in weight_types(a.path)
    assert a.path.stat().st_size < 0.6 * sizes(float_onnx)["size_bytes"]


def test_dynamic_int8(float_onnx, splits, reference, tmp_path):
    q = quantize(float_onnx, DynamicInt8(), splits=splits, workdir=tmp_path, reference=reference)
    assert q.artifact.variant == "dynamic-int8" and q.artifact.parity.passed
    assert "MatMulInteger" in op_types(q.artifact.path)


def test_a_torch_module_is_exported_first(teacher, splits, tmp_path):
    q = quantize(teacher, StaticInt8(), splits=splits, workdir=tmp_path)
    assert q.artifact.parity.passed
    assert not list(tmp_path.glob("*.data"))  # the float export was made self-contained


def test_wrong_inputs_are_errors(splits, tmp_path):
    from compressor.core.artifact import Artifact

    with pytest.raises(CompressError, match="needs the float32 ONNX artifact"):
        quantize(Artifact(tmp_path / "m.tflite", "tflite", "float32"), StaticInt8(), splits=splits,
                 workdir=tmp_path)
    with pytest.raises(CompressError, match="is not an .onnx file"):
        quantize(tmp_path / "missing.onnx", Fp16(), splits=splits, workdir=tmp_path)


def test_browser_safe_variant(float_onnx, splits, reference, tmp_path):
    q = quantize(float_onnx, StaticInt8(runtime="web"), splits=splits, workdir=tmp_path, reference=reference)
    a = q.artifact
    assert a.variant == "int8-web" and a.parity.passed
    assert not INTEGER_OPS & set(op_types(a.path))  # no ConvInteger / MatMulInteger
    check = a.extra["ort_web_check"]
    if shutil.which("node") is None:
        assert check["checked"] is False
    else:
        assert check["checked"] and check["top1_agreement_vs_ort_cpu"] == 1.0


@pytest.mark.browser
def test_int8_runs_in_onnxruntime_web(float_onnx, splits, reference, tmp_path):
    """The same QDQ file in onnxruntime-web's wasm kernels gives ONNX Runtime CPU's outputs."""
    from exporters.onnx import run
    from exporters.onnx.int8 import run_in_ort_web

    q = quantize(float_onnx, StaticInt8(runtime="web"), splits=splits, workdir=tmp_path, reference=reference)
    x = splits.test.x[:32]
    web, cpu = run_in_ort_web(q.artifact.path, x), run(q.artifact.path, x)
    assert np.abs(web - cpu).max() < 1e-3 and (web.argmax(1) == cpu.argmax(1)).all()
