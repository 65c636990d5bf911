"""One measurement in a fresh process: `python -m benchmarks.worker < job.json` prints one JSON line.

Pinning and the memory cap are applied first, before any runtime is imported, so that
thread pools size themselves to the one core and every allocation counts against the cap.
"""
from __future__ import annotations

import json
import os
import resource
import sys


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    # VmHWM, not getrusage's ru_maxrss: ru_maxrss survives execve, so a worker started by a
    # parent that had loaded torch would report the parent's peak.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _runner(name: str):
    """The runner module, without importing its exporter package when that can be avoided.

    `exporters.onnx`'s package imports torch (2 s, ~200 MB) to export; the runner itself needs only
    onnxruntime. Loading the runner's file directly keeps the timed process lean: faster to start
    (the default bench starts several per row) and its peak memory is the runtime's, not torch's.
    """
    import importlib
    import importlib.util
    from pathlib import Path

    import exporters
    from benchmarks import runners

    module = runners.NATIVE.get(name)
    parts = module.split(".")
    path = Path(exporters.__file__).parent.joinpath(*parts[1:]).with_suffix(".py")
    if parts[0] != "exporters" or module in sys.modules or not path.is_file():
        return runners.get(name)
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    try:
        spec.loader.exec_module(mod)
    except ImportError:  # a relative import needs the package: import it the ordinary way
        del sys.modules[module]
        return runners.get(name)
    return mod


def main() -> int:
    from benchmarks.harness import Job

    job = Job.from_json(sys.stdin.read())
    if job.pin_core is not None:
        os.sched_setaffinity(0, {job.pin_core})
    if job.mem_cap_mb:
        cap = job.mem_cap_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    threads = job.threads or len(os.sched_getaffinity(0))

    import numpy as np

    from benchmarks.harness import measure

    runner = _runner(job.runner)
    rng = np.random.default_rng(job.seed)
    dtype = np.dtype(job.input_dtype)
    shape = tuple(job.input_shape)
    if np.issubdtype(dtype, np.integer):
        x = rng.integers(0, 100, size=shape).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    xb = np.repeat(x, job.bounds.batch, axis=0) if job.bounds.batch else None
    rss0 = _rss_bytes()
    result = measure(lambda: runner.load(job.path, threads), lambda s, v: s.run(v), x, job.bounds, xb)
    sess = result.pop("session")
    if job.parity_inputs:
        xs = np.load(job.parity_inputs)
        result["outputs"] = np.concatenate([sess.run(xs[i:i + 1]) for i in range(len(xs))]).tolist()
    result.update(runtime=runner.version(), threads=threads, cores=sorted(os.sched_getaffinity(0)),
                  rss_before_load_bytes=rss0,
                  peak_rss_bytes=_peak_rss_bytes(),
                  mem_cap_mb=job.mem_cap_mb)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
