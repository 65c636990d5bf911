"""The one training loop: supervised (method "labels") and distillation alike.

Every epoch: shuffle with a seeded generator, step AdamW under a cosine schedule, validate,
keep the best weights, stop early after `patience` epochs without improvement, and write a
checkpoint holding everything the next epoch depends on (weights, optimizer, schedule, all
random states), so a resumed run reproduces an uninterrupted one exactly.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import CompressError
from ..data import Dataset
from . import distributed as dd
from .config import DistillConfig
from .methods import Batch, DistillModule, Labels, Setup

TargetFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor | None, dict[str, torch.Tensor]]]


@dataclass
class TrainData:
    x: np.ndarray
    y: np.ndarray  # int64; -1 marks an unlabelled sample
    val_x: np.ndarray
    val_y: np.ndarray  # labels, or the teacher's predictions when the data has none


@dataclass
class Result:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -1.0
    best_loss: float = float("inf")  # validation cross-entropy of the best epoch: breaks accuracy ties
    resumed_from: int | None = None

    @property
    def seconds_per_epoch(self) -> float:
        secs = [h["seconds"] for h in self.history]
        return float(np.mean(secs)) if secs else float("nan")


class Checkpoints:
    """last.pt (everything, every epoch) and best.pt (best weights) in one folder, written atomically."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder, self.fingerprint = Path(folder), fingerprint

    def _write(self, obj: Any, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.tmp-{os.getpid()}"
        torch.save(obj, tmp)
        os.replace(tmp, self.folder / name)  # a kill mid-write leaves the previous checkpoint whole

    def save(self, state: dict[str, Any]) -> None:
        if dd.rank() == 0:
            self._write({**state, "fingerprint": self.fingerprint}, "last.pt")
            self._write(state["best_state"], "best.pt")
        dd.barrier()

    def load(self) -> dict[str, Any] | None:
        path = self.folder / "last.pt"
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise CompressError(f"checkpoint {path} cannot be read ({type(e).__name__}); delete it to start "
                                "over") from None
        if state.get("fingerprint") != self.fingerprint:
            raise CompressError(f"checkpoint {path} belongs to a run with other options or inputs; resume with "
                                "the same command, or drop --resume to start over")
        return state

    def clear(self) -> None:
        if dd.rank() == 0:
            for name in ("last.pt", "best.pt"):
                (self.folder / name).unlink(missing_ok=True)
        dd.barrier()


def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to max(1, H/8) pixels, zero fill (augmentation for image inputs)."""
    if x.ndim != 4:
        return x
    m = max(1, x.shape[2] // 8)
    d = torch.randint(-m, m + 1, (len(x), 2), generator=gen)
    padded = nn.functional.pad(x, (m, m, m, m))
    h, w = x.shape[2:]
    rows = [padded[i, :, m + dy:m + dy + h, m + dx:m + dx + w] for i, (dy, dx) in enumerate(d.tolist())]
    return torch.stack(rows)


@torch.no_grad()
def _score(student: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Validation accuracy and cross-entropy. A small validation split saturates (100% from an early epoch
    on), so among epochs of equal accuracy the lower loss is kept, not the first one."""
    from ..evaluate import predict

    if not len(y):
        return float("nan"), float("nan")
    logits = torch.from_numpy(predict(student, x))
    target = torch.from_numpy(y)
    return float((logits.argmax(1) == target).float().mean()), float(nn.functional.cross_entropy(logits, target))


def train(dm: DistillModule, data: TrainData, cfg: DistillConfig, targets: TargetFn | None, *,
          checkpoints: Checkpoints | None = None, resume: bool = False, progress: Any = None,
          on_epoch: Callable[[int, float], None] | None = None) -> Result:
    """Train `dm.student` in place (best validation weights at the end) and return the history."""
    from ..evaluate import seed_everything

    gen = seed_everything(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    params = [p for p in dm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    res = Result()
    best_state, bad, start = None, 0, 0
    if resume and checkpoints is not None and (st := checkpoints.load()) is not None:
        dm.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        aug_gen.set_state(st["aug_gen"])
        torch.set_rng_state(st["torch_rng"])
        best_state, bad, start = st["best_state"], st["bad"], st["epoch"] + 1
        res.history, res.best_epoch, res.best_score = st["history"], st["best_epoch"], st["best_score"]
        res.best_loss = st.get("best_loss", float("inf"))  # checkpoints written before the tie-break had none
        res.resumed_from = st["epoch"]
    elif checkpoints is not None:
        checkpoints.clear()
    model = dd.wrap(dm)
    x_all, y_all = torch.from_numpy(np.ascontiguousarray(data.x)), torch.from_numpy(data.y)
    n_batches = (len(x_all) + cfg.batch_size - 1) // cfg.batch_size
    if progress is not None:
        progress.start(cfg.epochs * n_batches, start * n_batches)
    for epoch in range(start, cfg.epochs):
        if cfg.patience and bad >= cfg.patience:
            break
        t0 = time.perf_counter()
        dm.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(x_all), generator=gen).split(cfg.batch_size):
            xb = x_all[idx]
            if cfg.augment == "shift":
                xb = shift(xb, aug_gen)  # drawn for the whole global batch: same numbers on every rank
            mine = dd.shard(torch.arange(len(idx)))
            weight = dd.shard_weight(len(mine), len(idx))
            idx, xb = idx[mine], xb[mine]
            target, feats = targets(idx, xb) if targets is not None else (None, {})
            batch = Batch(xb, y_all[idx], idx, target, feats)
            opt.zero_grad()
            loss, _ = model(batch)
            (loss * weight).backward()
            opt.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
            if progress is not None:
                progress.advance(epoch, total / max(count, 1), res.best_score)
        sched.step()
        dd.sync_buffers(dm)
        total, count = dd.sum_over_ranks(total, count)  # report the loss of the whole epoch, not one shard
        if not math.isfinite(total):  # every weight is NaN from here on: stop now, before a checkpoint of it
            raise CompressError(f"training diverged: the loss is {total / max(count, 1)} in epoch {epoch + 1}; "
                                f"lower --lr (now {cfg.lr:g}) or check the data for NaN or Inf values")
        score, val_loss = _score(dm.student, data.val_x, data.val_y)
        if score > res.best_score or (score == res.best_score and val_loss < res.best_loss):
            res.best_score, res.best_loss, res.best_epoch, bad = score, val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in dm.student.state_dict().items()}
        else:
            bad += 1
        res.history.append({"epoch": epoch, "loss": total / max(count, 1), "val": score, "val_loss": val_loss,
                            "seconds": time.perf_counter() - t0})
        if progress is not None:
            progress.advance(epoch, total / max(count, 1), res.best_score, steps=0)
        if on_epoch:
            on_epoch(epoch, score)
        if checkpoints is not None:
            checkpoints.save({"epoch": epoch, "model": dm.state_dict(), "opt": opt.state_dict(),
                              "sched": sched.state_dict(), "gen": gen.get_state(), "aug_gen": aug_gen.get_state(),
                              "torch_rng": torch.get_rng_state(), "best_state": best_state, "bad": bad,
                              "history": res.history, "best_epoch": res.best_epoch, "best_score": res.best_score,
                              "best_loss": res.best_loss})
    if best_state is not None:
        dm.student.load_state_dict(best_state)
    dm.student.eval()
    return res


def fit(model: nn.Module, train_data: Dataset, val_data: Dataset, *, epochs: int = 20, lr: float = 3e-3,
        batch: int = 64, seed: int = 0, on_epoch=None, augment: str = "none") -> nn.Module:
    """Cross-entropy training with AdamW and a cosine schedule; keeps the best epoch on `val_data`.

    The same loop as distillation (`train` above) with the "labels" method alone;
    `augment` takes the same choices as DistillConfig.augment (e.g. "shift": random translations).
    """

    if train_data.y is None or val_data.y is None:
        raise ValueError("fit needs labelled training and validation data")
    cfg = DistillConfig(methods=("labels",), alpha=1.0, epochs=epochs, lr=lr, batch_size=batch, seed=seed,
                        augment=augment)
    example = torch.from_numpy(train_data.x[:1])
    setup = Setup(cfg, None, model, example, len(train_data))
    dm = DistillModule(model, {"labels": Labels(setup)}, cfg, labelled=True)
    train(dm, TrainData(train_data.x, train_data.y, val_data.x, val_data.y), cfg, None, on_epoch=on_epoch)
    return model.eval()
