import time

import numpy as np
import pytest

from benchmarks.harness import PRESETS, Bounds, Job, _loop, measure, run_isolated
from compressor.core.errors import CompressError


def test_loop_respects_min_runs_min_time_and_caps():
    assert len(_loop(lambda: None, 7, 0.0, 10.0, 1000)) == 7
    t0 = time.perf_counter()
    times = _loop(lambda: time.sleep(0.002), 1, 0.05, 10.0, 1000)
    assert time.perf_counter() - t0 >= 0.05 and len(times) > 1
    # the time cap wins over the count, as benchmark_model's max_secs does
    assert len(_loop(lambda: time.sleep(0.01), 1000, 0.0, 0.05, 10000)) < 20
    assert len(_loop(lambda: None, 1, 10.0, 10.0, 50)) == 50


def test_measure_separates_phases():
    calls = []
    res = measure(lambda: "sess", lambda s, x: calls.append(x.shape), np.zeros((1, 3)), PRESETS["quick"],
                  np.zeros((8, 3)))
    assert res["session"] == "sess" and res["load_ms"] >= 0 and res["first_ms"] >= 0
    assert res["warmup_runs"] >= PRESETS["quick"].warmup_runs
    assert len(res["samples_ms"]) >= PRESETS["quick"].min_runs
    assert res["batch"] == 8 and calls.count((8, 3)) == len(res["batch_samples_ms"]) + 1


def test_bad_bounds_are_one_line_errors():
    with pytest.raises(CompressError):
        Bounds(min_seconds=5, max_seconds=1)
    with pytest.raises(CompressError):
        Bounds(min_runs=0)


def test_isolated_onnx_run_returns_samples_memory_and_outputs(models, tmp_path):
    from exporters.onnx import run

    x = np.random.default_rng(0).standard_normal((3, 128)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = run_isolated(Job("onnxruntime", str(models["base"]), (1, 128), "float32", PRESETS["quick"], threads=1,
                           parity_inputs=str(tmp_path / "x.npy")))
    assert "error" not in res, res
    assert res["threads"] == 1 and res["samples_ms"] and res["peak_rss_bytes"] > res["rss_before_load_bytes"] > 0
    np.testing.assert_allclose(np.array(res["outputs"]), run(models["base"], x), rtol=1e-5, atol=1e-5)


def test_worker_failure_is_reported_not_raised(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    res = run_isolated(Job("onnxruntime", str(bad), (1, 4), "float32", PRESETS["quick"]))
    assert res["error"].startswith("worker exited")


def test_pinned_and_capped_worker(models):
    res = run_isolated(Job("onnxruntime", str(models["base"]), (1, 128), "float32", PRESETS["quick"], threads=1,
                           pin_core=0, mem_cap_mb=1024))
    assert "error" not in res, res
    assert res["cores"] == [0] and res["mem_cap_mb"] == 1024


def test_fixed_batch_artifact_gets_sequential_throughput():
    """A model that only takes batch 1 is timed on the same batch as back-to-back single calls."""
    calls = []

    def run(_sess, x):
        if len(x) != 1:
            raise ValueError("dimension mismatch: batch fixed at 1")
        calls.append(1)
        return x

    x = np.zeros((1, 4), np.float32)
    b = Bounds(warmup_runs=1, warmup_seconds=0, min_runs=2, min_seconds=0, max_seconds=0.1, batch=8,
               batch_seconds=0.01)
    out = measure(lambda: object(), run, x, b, xb=np.zeros((8, 4), np.float32))
    assert out["batch_mode"] == "sequential" and out["batch"] == 8 and len(out["batch_samples_ms"]) >= 3
    assert "batch fixed at 1" in out["batch_error"]
    batched = measure(lambda: object(), lambda _s, x: x, x, b, xb=np.zeros((8, 4), np.float32))
    assert batched["batch_mode"] == "batched" and "batch_error" not in batched
