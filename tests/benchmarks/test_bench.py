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


def test_identical_artifacts_come_out_level_under_a_burst_of_load(models, tmp_path, monkeypatch):
    """Two copies of one model, and a CPU-burning process that starts part-way through the measurements.

    Measured one after the other, the copy that ran during the burst would come out slower; measured
    in interleaved rounds of fresh processes, the burst lands on both, each row's interval is over its
    processes, and the two rows are reported level (not ranked).
    """
    import shutil
    import subprocess
    import sys
    import time

    from benchmarks.harness import PRESETS

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    shutil.copy(models["base"], a)
    shutil.copy(models["base"], b)
    items, _ = discover([a, b])
    # all cores: the setting a neighbour's burst hurts most (one thread of the two waits for the core)
    setting = [s.name for s in expand(("cpu",), PlatformOptions()) if s.runner == "onnxruntime"][-1]
    opts = bench.BenchOptions(bounds=PRESETS["quick"], peak=False, only=(setting,))
    burners: list[subprocess.Popen] = []
    calls: list[tuple[str, float]] = []
    measure_one = bench.measure_one

    def measure_with_burst(setting, it, *args, **kw):
        if len(calls) == 5:  # the burst starts in the third of six rounds, and lasts to the end
            burners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        calls.append((it.name, time.perf_counter()))
        return measure_one(setting, it, *args, **kw)

    monkeypatch.setattr(bench, "measure_one", measure_with_burst)
    try:
        res = bench.run(items, opts)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    # round after round, back and forth: a b, b a, a b ...
    assert [n for n, _ in calls] == ["onnx:a", "onnx:b", "onnx:b", "onnx:a"] * 3 and len(burners) == 1
    ra, rb = res["rows"]
    assert ra["summary_ms"]["processes"] == rb["summary_ms"]["processes"] == 6  # the default rounds
    assert ra["level_with"] == [f"onnx:b on {setting}"] and rb["level_with"] == [f"onnx:a on {setting}"]
    (rec,) = res["recommended"].values()
    assert "level with" in rec["why"]
