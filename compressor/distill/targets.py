"""What the teacher(s) say about a batch: soft targets (ensemble mean) and the features methods need.

Without augmentation the outputs are computed once per teacher and cached (compressor.distill.cache);
with augmentation every batch is new, so the teachers run online in eval mode under no_grad.
A model may return several outputs: the cache keeps every one of them (an entry serves any --distill-output),
and the targets come from the one distilled (`output`, its index).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import batches, cache
from . import distributed as dd
from .features import tap
from .losses import teacher_targets
from .trainer import TargetFn


def output_key(i: int) -> str:
    """The cache's name for a model's i-th output ("logits" for the first, as entries of one output always were)."""
    return "logits" if i == 0 else f"output_{i}"


@torch.no_grad()
def outputs(module: nn.Module, x: np.ndarray | torch.Tensor, features: list[str], batch: int = 512
            ) -> dict[str, np.ndarray]:
    """Every output and the features of `module` (eval mode) on all of `x` (plain or packed), as float32 arrays."""
    was = module.training
    module.eval()
    parts: dict[str, list[np.ndarray]] = {f: [] for f in features}
    with tap(module, features, "teacher") as got:
        for i in range(0, len(x), batch):
            xs = (x[i:i + batch],) if isinstance(x, torch.Tensor) else batches.take(x, slice(i, i + batch))
            out = module(*xs)
            for j, o in enumerate((out,) if isinstance(out, torch.Tensor) else out):
                parts.setdefault(output_key(j), []).append(o.float().numpy())
            for f in features:
                parts[f].append(got[f].float().numpy())
    module.train(was)
    return {k: np.concatenate(v) for k, v in parts.items()}


def cached(teachers: list[tuple[nn.Module, str]], x: np.ndarray, features: list[str], root: Path,
           temperature: float, mean: str, kind: str = "logits", output: int = 0) -> tuple[TargetFn, list[str]]:
    """Targets from the on-disk cache (filled by rank 0 when missing); returns the function and the keys."""
    data_sha = cache.data_hash(x)
    keys, arrays = [], []
    for i, (module, sha) in enumerate(teachers):
        feats = features if i == 0 else []  # features come from the first teacher only
        key = cache.make_key(sha, data_sha, feats)
        if dd.rank() == 0:
            cache.get_or_compute(root, key, lambda m=module, f=feats: outputs(m, x, f))
        dd.barrier()  # other ranks read what rank 0 wrote
        got = cache.read(root, key)
        if got is None or output_key(output) not in got:
            raise OSError(f"teacher-output cache entry {root / key} is missing or damaged")
        keys.append(key)
        arrays.append(got)
    name = output_key(output)

    def fn(idx: torch.Tensor, xs: batches.Inputs):
        rows = idx.numpy()
        outs = [torch.from_numpy(np.asarray(a[name][rows])) for a in arrays]
        feats = {f: torch.from_numpy(np.asarray(arrays[0][f][rows])) for f in features}
        return teacher_targets(outs, kind, temperature, mean), feats

    return fn, keys


def online(teachers: list[nn.Module], features: list[str], temperature: float, mean: str,
           kind: str = "logits", output: int = 0) -> TargetFn:
    for t in teachers:
        t.eval()

    @torch.no_grad()
    def fn(idx: torch.Tensor, xs: batches.Inputs | torch.Tensor):
        outs, feats = [], {}
        for i, t in enumerate(teachers):
            with tap(t, features if i == 0 else [], "teacher") as got:
                out = t(*batches.args(xs))
            outs.append(batches.pick(out, output))
            if i == 0:
                feats = dict(got)
        return teacher_targets(outs, kind, temperature, mean), feats

    return fn
