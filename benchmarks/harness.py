"""The measurement protocol, as LiteRT's benchmark_model separates it, and fresh-process isolation.

Phases of one measurement (one artifact on one target):
  load           open the model (session/interpreter creation, tensor allocation)
  first          the first inference, alone (lazy initialisation, JIT, packing)
  warm-up        at least `warmup_runs` runs and `warmup_seconds` (capped by `max_seconds`)
  steady state   at least `min_runs` runs and `min_seconds`, at most `max_seconds`
                 (the time cap wins over the count, as benchmark_model's max_secs does)
  throughput     a short run at batch `batch`; an artifact with a fixed batch of 1 (TFLite, TF.js from
                 onnx2tf) runs the same `batch` inputs as back-to-back single calls instead, marked
                 batch_mode "sequential"
The browser page (benchmarks/web/bench.js) implements the same protocol in JavaScript.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.errors import CompressError


@dataclass(frozen=True)
class Bounds:
    warmup_runs: int = 10
    warmup_seconds: float = 0.5
    min_runs: int = 30
    min_seconds: float = 1.0
    max_seconds: float = 3.0
    batch: int = 32  # throughput batch; 0 skips the throughput phase
    batch_seconds: float = 0.5
    max_runs: int = 2000  # keeps sub-millisecond models from storing 10^5 samples

    def __post_init__(self) -> None:
        if self.min_runs < 1 or self.warmup_runs < 0:
            raise CompressError("bench bounds: min_runs must be >= 1 and warmup_runs >= 0")
        if not 0 <= self.min_seconds <= self.max_seconds or self.max_seconds <= 0:
            raise CompressError("bench bounds: need 0 <= min_seconds <= max_seconds and max_seconds > 0")
        if self.max_runs < self.min_runs:
            raise CompressError("bench bounds: max_runs must be >= min_runs")
        if self.batch < 0:
            raise CompressError("bench bounds: batch must be >= 0")


# Named presets; `quick` is for tests and smoke runs, `demo` keeps `make demo` to a few minutes.
PRESETS: dict[str, Bounds] = {
    "quick": Bounds(warmup_runs=2, warmup_seconds=0.0, min_runs=5, min_seconds=0.0, max_seconds=0.3,
                    batch=8, batch_seconds=0.05),
    "demo": Bounds(warmup_runs=10, warmup_seconds=0.2, min_runs=30, min_seconds=0.5, max_seconds=1.5,
                   batch=32, batch_seconds=0.2),
    "default": Bounds(),
    "thorough": Bounds(warmup_runs=20, warmup_seconds=1.0, min_runs=100, min_seconds=5.0, max_seconds=20.0,
                       batch=64, batch_seconds=2.0),
}


def _loop(fn: Callable[[], Any], min_runs: int, min_s: float, max_s: float, max_runs: int) -> list[float]:
    """Run fn until (>= min_runs and >= min_s), or >= max_s, or max_runs; per-run seconds."""
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        elapsed = t1 - start
        if (len(times) >= min_runs and elapsed >= min_s) or elapsed >= max_s or len(times) >= max_runs:
            return times


def measure(load: Callable[[], Any], run: Callable[[Any, np.ndarray], Any], x: np.ndarray,
            bounds: Bounds, xb: np.ndarray | None = None) -> dict[str, Any]:
    """Apply the protocol in this process. `load()` -> session; `run(session, x)` -> outputs."""
    t0 = time.perf_counter()
    sess = load()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(sess, x)
    first_s = time.perf_counter() - t0
    warm = _loop(lambda: run(sess, x), bounds.warmup_runs, bounds.warmup_seconds, bounds.max_seconds,
                 bounds.max_runs) \
        if bounds.warmup_runs else []
    steady = _loop(lambda: run(sess, x), bounds.min_runs, bounds.min_seconds, bounds.max_seconds, bounds.max_runs)
    out: dict[str, Any] = {"load_ms": 1e3 * load_s, "first_ms": 1e3 * first_s, "warmup_runs": len(warm),
                           "warmup_ms": 1e3 * sum(warm), "samples_ms": [1e3 * t for t in steady]}
    if xb is not None and bounds.batch:
        def batched() -> Any:
            return run(sess, xb)

        def sequential() -> None:
            for i in range(len(xb)):
                run(sess, xb[i:i + 1])

        try:
            run(sess, xb)  # first call at a new shape may re-plan; keep it out of the samples
            fn, out["batch_mode"] = batched, "batched"
        except Exception as e:  # noqa: BLE001 - a fixed-batch artifact: the same inputs, one call each
            out["batch_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
            fn, out["batch_mode"] = sequential, "sequential"
        bt = _loop(fn, 3, bounds.batch_seconds, max(bounds.batch_seconds, 0.05) * 4, bounds.max_runs)
        out["batch"] = int(xb.shape[0])
        out["batch_samples_ms"] = [1e3 * t for t in bt]
    out["session"] = sess
    return out


@dataclass(frozen=True)
class Job:
    """One measurement, sent as JSON to a fresh `python -m benchmarks.worker` process."""

    runner: str  # a name in benchmarks.runners.NATIVE
    path: str
    input_shape: tuple[int, ...]  # batch 1, in the artifact's layout
    input_dtype: str
    bounds: Bounds
    threads: int = 0  # 0: all cores the process may use
    pin_core: int | None = None  # run on this one core only (os.sched_setaffinity)
    mem_cap_mb: int | None = None  # address-space cap (resource.setrlimit RLIMIT_AS)
    parity_inputs: str | None = None  # .npy of inputs (artifact layout) whose outputs are returned
    seed: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Job:
        d = json.loads(text)
        d["bounds"] = Bounds(**d["bounds"])
        d["input_shape"] = tuple(d["input_shape"])
        return Job(**d)


def run_isolated(job: Job, *, timeout: float = 300.0) -> dict[str, Any]:
    """Run one measurement in a fresh Python process; returns its result dict.

    A fresh process per measurement keeps one runtime's thread pools, allocator state and
    caches from colouring the next; it is also where the CPU pinning and memory cap apply.
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        p = subprocess.run([sys.executable, "-m", "benchmarks.worker"], input=job.to_json(), text=True,
                           capture_output=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker exited {p.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])
