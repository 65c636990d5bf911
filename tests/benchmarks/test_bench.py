import numpy as np

from benchmarks import bench
from benchmarks.discover import canonical_shape, discover, to_layout
from benchmarks.platforms import PlatformOptions, expand


def test_parity_rule_counts_only_matching_outputs():
    ref = np.array([[0.0, 1.0, 0.5], [2.0, 0.1, 0.0]])
    assert bench.parity(ref + 1e-6, ref, "float32")["passed"]
    assert not bench.parity(ref + 0.1, ref, "float32")["passed"]  # float32 must match closely
    assert bench.parity(ref + 0.1, ref, "int8")["passed"]  # quantized: judged on top-1 agreement
    assert not bench.parity(ref[::-1], ref, "int8")["passed"]


def test_layout_conversion_to_nhwc():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    assert to_layout(x, (1, 3, 4, 5)) is x
    np.testing.assert_array_equal(to_layout(x, (1, 4, 5, 3)), x.transpose(0, 2, 3, 1))
    assert to_layout(x, (1, 7)) is None


def test_targets_expand_to_named_settings():
    names = [s.name for s in expand("all", PlatformOptions(device="moto-g4"))]
    assert "onnxruntime-1t" in names and "litert-1t" in names and "torch-1t" in names
    assert "tfjs-wasm@moto-g4x6" in names and any(n.startswith("litert-1core") for n in names)
    assert {"tfjs-wasm", "tfjs-webgl", "tfjs-cpu", "ort-web-wasm"} <= set(names)
    assert "tfjs-wasm@pixel-7x2.5" in [s.name for s in expand("mobile", PlatformOptions(cpu_throttle=2.5))]


def test_discover_reads_shapes(models):
    items, manifest = discover([models["base"]])
    assert manifest is None and items[0].input_shape == (1, 128) and canonical_shape(items) == (1, 128)


def test_each_row_is_checked_against_its_own_reference(models):
    from dataclasses import replace

    from benchmarks.harness import PRESETS
    from exporters.onnx import run as ort_run

    base, slow = discover([models["base"]])[0][0], discover([models["slow"]])[0][0]
    items = [replace(base, name="onnx:base"), replace(slow, name="onnx:slow")]
    opts = bench.BenchOptions(bounds=PRESETS["quick"], peak=False, only=("onnxruntime-1t",))
    ref = lambda x: ort_run(models["base"], x)
    res = bench.run(items, opts, reference=ref)
    assert [r["counted"] for r in res["rows"]] == [True, False]  # slow's outputs differ from base's
    res = bench.run(items, opts, reference=ref, references={"onnx:slow": lambda x: ort_run(models["slow"], x)})
    assert all(r["counted"] for r in res["rows"])
