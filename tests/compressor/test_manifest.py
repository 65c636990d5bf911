"""manifest.json rows: the same quality and size figures for every artifact, whichever step made it."""
from __future__ import annotations

from compressor.manifest import with_quality


def _row(fmt: str, variant: str, size: int, parity: dict | None = None, **extra) -> dict:
    return {"format": fmt, "variant": variant, "size_bytes": size, "parity": parity, **extra}


def test_quality_fields_come_from_the_parity_check_and_sizes_from_the_float_artifact():
    rows = with_quality([
        _row("tflite", "float32", 1000, {"accuracy": 0.99, "accuracy_drop_points": 0.0, "top1_agreement": 1.0}),
        _row("tflite", "int8", 300, {"accuracy": 0.98, "accuracy_drop_points": 1.0, "top1_agreement": 0.97}),
        _row("onnx", "int8", 50, {"accuracy": None, "top1_agreement": 0.99}, accuracy=0.5,
             size_ratio_vs_float32=0.25),
        _row("web-bundle", "ort", 9000, {"accuracy": 1.0, "top1_agreement": 1.0}),
    ])
    f32, i8, onnx_i8, web = rows
    assert (i8["accuracy"], i8["accuracy_drop_points"], i8["top1_agreement"]) == (0.98, 1.0, 0.97)
    assert i8["size_ratio_vs_float32"] == 0.3 and "size_ratio_vs_float32" not in f32
    # figures a step recorded itself are kept; a format without a float32 artifact gets no ratio
    assert onnx_i8["accuracy"] == 0.5 and onnx_i8["size_ratio_vs_float32"] == 0.25
    assert "accuracy" not in web and "size_ratio_vs_float32" not in web


def test_written_manifest_is_strict_json_with_null_for_unmeasured_figures(tmp_path):
    import json
    import math

    from compressor.manifest import write

    write({"teacher": {"test_accuracy": math.nan}, "artifacts": [{"x": [1.0, math.inf]}]}, tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"teacher": {"test_accuracy": None}, "artifacts": [{"x": [1.0, None]}]}
