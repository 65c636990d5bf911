"""studies/rank_under_load.py: relations between float rows, and what counts as a flip."""
from studies.rank_under_load import compare, relations


def row(artifact, setting, median, threads=1, level=()):
    return {"artifact": artifact, "setting": setting, "target": "cpu", "threads": threads,
            "summary_ms": {"median": median}, "level_with": list(level)}


def result(fp32, fp16, onnx, level=False):
    lw = ["tflite:float16 on litert-1t"] if level else []
    return {"rows": [row("tflite:float32", "litert-1t", fp32, level=lw), row("tflite:float16", "litert-1t", fp16),
                     row("onnx:float32", "onnxruntime-1t", onnx), row("onnx:float32", "onnxruntime-2t", 1.0, 2),
                     row("tflite:int8", "litert-1t", 0.1)]}


def test_only_float_rows_of_one_family_are_paired():
    rel = relations(result(5.0, 6.0, 4.0))
    assert rel == {("cpu 1 thread", "onnx:float32 on onnxruntime-1t", "tflite:float16 on litert-1t"): "<",
                   ("cpu 1 thread", "onnx:float32 on onnxruntime-1t", "tflite:float32 on litert-1t"): "<",
                   ("cpu 1 thread", "tflite:float16 on litert-1t", "tflite:float32 on litert-1t"): ">"}


def test_a_reversed_order_is_a_flip_and_level_is_not():
    assert compare(result(5.0, 6.0, 4.0), result(5.1, 6.2, 4.1))[1] == 0
    assert compare(result(5.0, 6.0, 4.0), result(6.5, 6.0, 4.0))[1] == 1  # fp16 faster in the second run
    lines, flips = compare(result(5.0, 6.0, 4.0), result(6.5, 6.0, 4.0, level=True))
    assert flips == 0 and any("> / =" in ln for ln in lines)
