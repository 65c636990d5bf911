"""How a training process computes: CPU threads, and mixed precision (autocast, GradScaler).

Threads: torch's default counts the machine's cores, not the ones this process may use (a container or
`taskset` limits them) nor the other torchrun processes on the machine, and oversubscribed threads slow every
step. So on the CPU the trainer uses the cores of `os.sched_getaffinity`, divided among the local torchrun
processes, unless the user chose: OMP_NUM_THREADS / MKL_NUM_THREADS, or torch.set_num_threads before training.
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from ..core.errors import CompressError
from .config import PRECISIONS

# torch's thread count when this module was first imported: torch's own choice unless the caller had already
# set one (the CLI cannot; a Python caller who calls torch.set_num_threads later is seen as different from it)
_TORCH_DEFAULT = torch.get_num_threads()
_set_by_us: int | None = None
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def plan_threads(env: Mapping[str, str], local_world: int, cores: int, current: int, default: int,
                 ours: int | None = None) -> int | None:
    """The intra-op thread count to set, or None to leave torch's as it is (the user chose one).

    torchrun sets OMP_NUM_THREADS=1 for every process when it is unset and it starts several per machine; that 1
    cannot be told from a typed one, so under torchrun a 1 is replaced by this process's share of the cores."""
    omp = env.get("OMP_NUM_THREADS")
    if env.get("MKL_NUM_THREADS") or (omp and not (omp == "1" and local_world > 1)):
        return None
    if current not in (default, ours):
        return None  # the caller called torch.set_num_threads
    return max(1, cores // max(1, local_world))


def set_threads(local_world: int) -> int:
    """Set torch's CPU threads per `plan_threads`; returns the count in use."""
    global _set_by_us
    n = plan_threads(os.environ, local_world, usable_cores(), torch.get_num_threads(), _TORCH_DEFAULT, _set_by_us)
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)
        _set_by_us = n
    return torch.get_num_threads()


@functools.cache
def _probe(precision: str, device_type: str, device: str) -> str | None:
    """Why autocast at `precision` cannot train on `device` (one short phrase), or None when it can: a tiny
    linear layer's forward and backward under autocast, which is what a kernel or dtype gap breaks."""
    if device_type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bfloat16"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            w = torch.ones(4, 4, device=device, requires_grad=True)
            with torch.autocast(device_type, dtype=DTYPES[precision]):
                on = torch.is_autocast_enabled(device_type)
                out = torch.nn.functional.linear(torch.ones(2, 4, device=device), w)
            out.float().sum().backward()
    except (RuntimeError, TypeError, ValueError) as e:
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
    if not on or out.dtype != DTYPES[precision]:  # torch warns and turns autocast off for a dtype it lacks
        said = next((str(c.message) for c in caught), "autocast stayed off")
        return said.splitlines()[0][:120]
    return None


def check_precision(precision: str, device: torch.device) -> None:
    """A precision this torch cannot train with on `device` is a one-line error naming those it can."""
    if precision == "fp32":
        return
    why = _probe(precision, device.type, str(device))
    if why is not None:
        ok = [p for p in PRECISIONS if p == "fp32" or _probe(p, device.type, str(device)) is None]
        raise CompressError(f"--precision {precision} cannot train on {device.type} with torch {torch.__version__} "
                            f"({why}); choose one of: {', '.join(ok)}")


def autocast(precision: str, device: torch.device) -> Any:
    """The context the student's forward and loss run in: autocast to bf16/fp16, nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16's gradients underflow without loss scaling (bf16 has fp32's exponent range and needs none); a
    disabled scaler's step and update are plain optimizer steps."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
