"""Running under `torchrun --nproc-per-node N`: process group, sharding helpers, rank-0-only work.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT. Every rank runs the
same pipeline up to distillation; rank 0 alone writes the cache, checkpoints and the output
folder, the others help with the gradient and stop after distillation.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist


def world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_world() -> int:
    """Processes of this job on this machine (torchrun's --nproc-per-node): they share its cores."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_worker() -> bool:
    """A rank other than 0 of a torchrun job: it trains but writes nothing."""
    return world() > 1 and rank() != 0


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


_device = torch.device("cpu")  # where this process trains (setup); collectives put their tensors there


def has_mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(requested: str, cuda_available: bool | None = None, mps_available: bool | None = None) -> str:
    """--device: "auto" is cuda when CUDA is present, else mps (Apple GPUs), else cpu; a device asked for by name
    that torch cannot see is a one-line error."""
    from ..core.errors import CompressError

    has_cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    mps = has_mps() if mps_available is None else mps_available
    if requested == "auto":  # under torchrun not mps: neither gloo nor nccl moves MPS tensors
        return "cuda" if has_cuda else "mps" if mps and world() == 1 else "cpu"
    if requested == "cuda" and not has_cuda:
        raise CompressError("--device cuda: this machine has no CUDA device visible to torch; use --device cpu "
                            "(or auto)")
    if requested == "mps" and not mps:
        raise CompressError("--device mps: this machine has no MPS (Apple GPU) device visible to torch; use "
                            "--device cpu (or auto)")
    if requested == "mps" and world() > 1:
        raise CompressError("--device mps trains in one process; under torchrun use --device cpu or cuda")
    return requested


def backend(device: str) -> str:
    """The process-group backend for where the tensors are: NCCL only moves CUDA tensors, gloo CPU ones (a
    machine with CUDA that trains on the CPU must still use gloo)."""
    return "nccl" if device.startswith("cuda") else "gloo"


def local_device(device: str) -> torch.device:
    """This rank's device: under torchrun each rank takes the GPU of its LOCAL_RANK."""
    if device == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(device)


def device() -> torch.device:
    return _device


def setup(requested: str = "cpu") -> torch.device:
    """Choose this process's device and join the process group once, with the backend matching that device;
    no group for a single process."""
    global _device
    _device = local_device(choose_device(requested))
    if _device.type == "cuda":
        torch.cuda.set_device(_device)
    if world() > 1 and not active():
        dist.init_process_group(backend=backend(_device.type))
    return _device


def teardown() -> None:
    if active():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def sync_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm statistics) everywhere, so every rank validates the same model."""
    if active():
        for b in module.buffers():
            dist.broadcast(b, src=0)


def sum_over_ranks(*values: float) -> tuple[float, ...]:
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_device)
    dist.all_reduce(t)
    return tuple(t.tolist())


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor's rows from every rank (shards may differ by one row)."""
    if not active():
        return t
    n = torch.tensor([len(t)], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    top = int(max(s.item() for s in sizes))
    pad = torch.zeros((top - len(t), *t.shape[1:]), dtype=t.dtype, device=t.device)
    parts = [torch.zeros((top, *t.shape[1:]), dtype=t.dtype, device=t.device) for _ in sizes]
    dist.all_gather(parts, torch.cat([t, pad]))
    return torch.cat([p[:int(s.item())] for p, s in zip(parts, sizes)])


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This rank's part of a global batch: the same global order as one process, split round-robin."""
    return idx[rank()::world()] if active() else idx


def shard_weight(mine: int, batch: int) -> float:
    """Factor for this rank's mean loss so that DDP's average of the ranks' gradients is the gradient
    of the whole batch's mean; an odd last batch gives the ranks unequal shards."""
    return world() * mine / batch if active() else 1.0


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    # a student distilled on one of several outputs (BERT's last_hidden_state) leaves the other outputs' heads
    # (its pooler) without gradients, which DDP refuses unless told to look for unused parameters
    return DDP(module, device_ids=[_device.index] if _device.type == "cuda" else None, find_unused_parameters=True)


def run_worker(s: Any, steps: list[tuple[str, Callable]]) -> dict[str, Any]:
    """What a non-zero rank runs instead of the pipeline: the steps up to distillation on state `s` (the
    pipeline's State), writing nothing."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="compress-rank") as tmp:
        s.workdir = Path(tmp)
        for name, step in steps:
            step(s)
            if name == "distill":
                break
    return {}
