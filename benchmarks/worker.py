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

    from benchmarks import runners
    from benchmarks.harness import measure

    runner = runners.get(job.runner)
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
