"""Converters started early and collected later: onnx2tf while the ONNX target exports and checks (and this
process imports TensorFlow), tensorflowjs_converter while the TFLite variants convert and check.

Each converter is a subprocess that uses a core of its own, so on a 2-core machine the run's wall time drops
by what they overlap (MobileNetV2 at 224 px: onnx2tf ~9 s, the TF.js converter ~5 s). A started converter
is collected by the exporter that needs it (`finish`), which then does exactly what it did after a
foreground run; `stop_all` ends whatever a failed or interrupted run leaves running.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from compressor.core.errors import ConverterError


@dataclass
class Started:
    proc: subprocess.Popen
    log: Path  # stdout and stderr (a file, not a pipe: nobody reads a pipe while the converter runs)
    t0: float  # time.perf_counter() at the start
    timeout: float
    what: str


def start(cmd: list[str], *, log: Path, timeout: float, what: str, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> Started:
    with open(log, "wb") as f:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    return Started(proc, log, time.perf_counter(), timeout, what)


def finish(job: Started) -> tuple[int, str]:
    """Wait for the converter (within its timeout, counted from its start); its exit status and log."""
    left = job.timeout - (time.perf_counter() - job.t0)
    try:
        code = job.proc.wait(timeout=max(left, 0.1))
    except subprocess.TimeoutExpired:
        stop(job)
        raise ConverterError(f"{job.what} took more than {job.timeout:.0f} s; try a smaller model") from None
    except BaseException:  # Ctrl-C, SIGTERM: the converter goes with the run
        stop(job)
        raise
    return code, job.log.read_text(errors="replace")


def stop(job: Started) -> None:
    """End the converter and anything it started (it runs in its own session)."""
    if job.proc.poll() is None:
        try:
            os.killpg(job.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        job.proc.wait()


def stop_all(pending: dict[str, Started]) -> None:
    for job in pending.values():
        stop(job)
    pending.clear()
