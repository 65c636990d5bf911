"""One optimizer step of the trainer: a global batch of batch_size * grad_accum rows, its gradient accumulated
over batches of batch_size, the student's forward and loss under --precision's autocast."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from . import batches, runtime
from . import distributed as dd
from .config import DistillConfig
from .methods import Batch


def batch_of(idx: torch.Tensor, x: np.ndarray, augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None,
             targets: Callable[..., Any] | None, aug_gen: torch.Generator, device: torch.device,
             y_all: torch.Tensor) -> Batch:
    """This rank's share of the global batch `idx`, on the device, with the teacher's targets (computed outside
    autocast: the teacher's outputs stay float32 whatever --precision)."""
    xs = batches.take(x, idx)
    if augment is not None:
        xs = tuple(augment(t, aug_gen) for t in xs)  # drawn for the whole global batch: same on every rank
    mine = dd.shard(torch.arange(len(idx)))
    idx, xs = idx[mine], batches.to(batches.rows(xs, mine), device)
    target, feats = targets(idx, xs) if targets is not None else (None, {})
    if target is not None:
        target, feats = target.to(device), {k: v.to(device) for k, v in feats.items()}
    return Batch(xs, y_all[idx].to(device), idx.to(device), target, feats)


def step(model: nn.Module, group: torch.Tensor, make: Callable[[torch.Tensor], Batch], cfg: DistillConfig,
         opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, device: torch.device) -> tuple[float, int] | None:
    """One optimizer step over `group` (batch_size * grad_accum rows), its gradient accumulated over batches of
    batch_size; returns this rank's loss sum and sample count, or None at a non-finite loss (one process)."""
    parts = group.split(cfg.batch_size)
    opt.zero_grad()
    total, count = 0.0, 0
    for i, idx in enumerate(parts):
        batch = make(idx)
        # each batch's mean loss weighted by its share of the group: the summed gradient is the group's mean
        weight = dd.shard_weight(len(batch.idx), len(idx)) * len(idx) / len(group)
        last = i == len(parts) - 1
        # DDP all-reduces gradients in backward: once per optimizer step is enough, on the last batch
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with runtime.autocast(cfg.precision, device):
                loss, _ = model(batch)
            loss = loss.float()
            value = loss.item()
            if not math.isfinite(value) and dd.world() == 1:  # a NaN step would poison every weight
                # (under torchrun every rank must reach the same collectives: the epoch's check stops them)
                return None
            scaler.scale(loss * weight).backward()
        total, count = total + value * len(batch.idx), count + len(batch.idx)
    scaler.step(opt)  # fp16: skipped when the scaled gradients overflowed; otherwise (and unscaled) opt.step()
    scaler.update()
    return total, count
