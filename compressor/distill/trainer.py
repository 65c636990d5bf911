"""The one training loop: supervised (method "labels") and distillation alike.

Every epoch: shuffle with a seeded generator, step AdamW under a cosine schedule (a step per
batch_size * grad_accum samples, the student's forward under --precision's autocast), validate,
keep the best weights, stop early after `patience` epochs without improvement, and write a
checkpoint holding everything the next step depends on (weights, optimizer, schedule, all
random states, the place in the epoch), so a resumed run reproduces an uninterrupted one exactly;
`checkpoint_every` adds such checkpoints within epochs.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import CompressError
from ..data import Dataset
from . import batches, runtime
from . import distributed as dd
from .checkpoints import Checkpoints
from .config import DistillConfig
from .curve import StepLog
from .methods import Batch, DistillModule, Labels, Setup
from .step import batch_of, step

# (rows of the batch in the training set, the batch's inputs) -> (the teacher's target, teacher features)
TargetFn = Callable[[torch.Tensor, batches.Inputs], tuple[torch.Tensor | None, dict[str, torch.Tensor]]]
DIVERGED = 10.0  # an epoch's loss this many times the first epoch's: the run is diverging, stop it


class Diverged(CompressError):
    """Training stopped on a diverging loss before any epoch worth keeping (compressor/distill/budget.py tries
    the next fallback, a lower learning rate among them)."""


@dataclass
class TrainData:
    x: np.ndarray  # a plain array, or a packed one with a field per input (compressor/core/feeds.py)
    y: np.ndarray  # int64; -1 marks an unlabelled sample
    val_x: np.ndarray
    val_y: np.ndarray  # labels, or the teacher's predictions when the data has none
    kind: str = "logits"  # the teacher's output kind: what validation measures (compressor.distill.quality)
    val_ref: np.ndarray | None = None  # the teacher's answers on val_x (quality.reference); needed but for logits
    output: int = 0  # which of the models' outputs is distilled (batches.choose_output)


@dataclass
class Result:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf  # scores can be negative (minus a regression's error)
    best_loss: float = float("inf")  # validation cross-entropy of the best epoch: breaks accuracy ties
    resumed_from: int | None = None  # the last whole epoch of the checkpoint resumed from
    resumed_step: int | None = None  # optimizer steps done at that checkpoint (it may be within an epoch)
    stopped: str | None = None  # why training stopped early: a diverging loss (one line)
    steps_per_epoch: int = 0  # optimizer steps
    step_loss: list[list[float]] = field(default_factory=list)  # [step, mean loss] (curve.StepLog)

    @property
    def seconds_per_epoch(self) -> float:
        secs = [h["seconds"] for h in self.history]
        return float(np.mean(secs)) if secs else float("nan")


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


BN_SAMPLES = 1024  # training samples that re-estimate batch-norm statistics after every epoch


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor | batches.Inputs, batch_size: int) -> bool:
    """Re-estimate every BatchNorm's running mean and variance with the current weights: a cumulative average
    over the batches of `x` (momentum None), other layers in eval mode; False when the model has no BN.

    Why: training normalises with batch statistics, which makes a conv followed by BN blind to its weights'
    scale, and AdamW's steps of ~lr grow small (pruned, He-initialised) weights fast; the running averages
    (momentum 0.1, a few dozen steps) then lag far behind the weights, and eval mode, which uses them, gives
    outputs hundreds of times too large (issue 15: a ResNet-18 student's largest logit 140 in eval mode against
    0.5 in train mode, 0% agreement). Recomputed this way, validation and the exported student see the
    statistics of the weights they have."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    xs = batches.args(x)
    if not bns or not len(xs[0]):
        return False
    dev = bns[0].running_mean.device
    was = model.training
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    parts = list(zip(*(t.split(batch_size) for t in xs)))
    if len(parts) > 1 and len(parts[-1][0]) < batch_size:
        parts = parts[:-1]  # a short last batch (one sample: BatchNorm1d refuses it) would weigh as much as a full one
    try:
        for xb in parts:
            model(*batches.to(xb, dev))
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.train(was)
    return True


@torch.no_grad()
def _score(student: nn.Module, data: TrainData) -> tuple[float, float]:
    """The validation score by output kind (accuracy or agreement, cosine, minus the error) and a loss.
    A small validation split saturates (100% from an early epoch on), so among epochs of equal score the
    lower loss is kept, not the first one."""
    from ..evaluate import predict
    from .quality import score

    if not len(data.val_x):
        return float("nan"), float("nan")
    dev = next(student.parameters()).device
    if dev.type == "cpu":
        out = batches.pick_array(predict(student, data.val_x), data.output)
    else:  # evaluate.predict feeds CPU tensors
        student.eval()
        n = len(data.val_x)
        out = np.concatenate([batches.pick(student(*batches.to(batches.take(data.val_x, slice(i, i + 512)), dev)),
                                           data.output).float().cpu().numpy() for i in range(0, n, 512)])
    return score(data.kind, out, data.val_y, data.val_ref)


def diverging(loss: float, first: float | None, epoch: int) -> str | None:
    """One line saying why the loss shows a diverging run (not finite, or DIVERGED times the first epoch's), or None."""
    if not math.isfinite(loss):
        return f"the loss is {loss} in epoch {epoch + 1}"
    if first is not None and first > 0 and loss > DIVERGED * first:
        return f"the loss grew to {loss:.4g} in epoch {epoch + 1}, over {DIVERGED:g}x the first epoch's {first:.4g}"
    return None


@dataclass
class _Loop:
    """What the loop carries from step to step, and what a checkpoint keeps of it."""
    best_state: dict[str, torch.Tensor] | None = None
    bad: int = 0  # epochs without a better validation score (--patience)
    start: int = 0  # the first epoch to run
    step: int = 0  # optimizer steps done, all epochs
    skip: int = 0  # optimizer steps of epoch `start` done before a mid-epoch checkpoint
    total: float = 0.0  # the running epoch's loss sum, samples and seconds (carried over a mid-epoch resume)
    count: int = 0
    seconds: float = 0.0


def _restore(st: dict[str, Any], dm: nn.Module, opt: torch.optim.Optimizer, sched: Any,
             scaler: torch.amp.GradScaler, gen: torch.Generator, aug_gen: torch.Generator, res: Result,
             steps_per_epoch: int) -> tuple[_Loop, StepLog]:
    """The loop's state from a checkpoint (at an epoch's end, or within one: `mid`)."""
    dm.load_state_dict(st["model"])
    opt.load_state_dict(st["opt"])
    sched.load_state_dict(st["sched"])
    if st.get("scaler"):
        scaler.load_state_dict(st["scaler"])
    mid = st.get("mid")
    gen.set_state(mid["gen"] if mid else st["gen"])  # mid: the epoch's start, from which its order is redrawn
    aug_gen.set_state(st["aug_gen"])
    torch.set_rng_state(st["torch_rng"])
    if st.get("cuda_rng") is not None and dd.device().type == "cuda":  # dropout on the GPU draws from its own
        torch.cuda.set_rng_state(st["cuda_rng"], dd.device())
    # checkpoints written before step checkpoints had no step count: every epoch ran whole
    loop = _Loop(st["best_state"], st["bad"], st["epoch"] + 1, st.get("step", (st["epoch"] + 1) * steps_per_epoch))
    if mid:
        loop.skip, loop.seconds = mid["done"], mid["seconds"]
        if dd.rank() == 0:  # the saved sums are over every rank: counted once, on rank 0
            loop.total, loop.count = mid["total"], mid["count"]
    res.history, res.best_epoch, res.best_score = st["history"], st["best_epoch"], st["best_score"]
    res.best_loss = st.get("best_loss", float("inf"))  # checkpoints written before the tie-break had none
    res.resumed_from = st["epoch"] if st["epoch"] >= 0 else None
    res.resumed_step = loop.step
    return loop, StepLog(st.get("steps"))


def train(dm: DistillModule, data: TrainData, cfg: DistillConfig, targets: TargetFn | None, *,
          checkpoints: Checkpoints | None = None, resume: bool = False, progress: Any = None,
          on_epoch: Callable[[int, float], None] | None = None,
          on_step: Callable[[int], None] | None = None) -> Result:
    """Train `dm.student` in place (best validation weights at the end) and return the history.

    on_epoch(epoch, score) runs after each epoch's checkpoint, on_step(steps done) after each optimizer step."""
    from ..evaluate import seed_everything

    gen = seed_everything(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    device = dd.device()
    runtime.check_precision(cfg.precision, device)
    dm.to(device)  # before the optimizer: it holds the parameters themselves
    params = [p for p in dm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    scaler = runtime.scaler(cfg.precision, device)
    n_all, y_all = len(data.x), torch.from_numpy(data.y)
    per_step = cfg.batch_size * cfg.grad_accum
    res = Result(steps_per_epoch=(n_all + per_step - 1) // per_step)
    loop, log = _Loop(), StepLog()
    if resume and checkpoints is not None and (st := checkpoints.load()) is not None:
        loop, log = _restore(st, dm, opt, sched, scaler, gen, aug_gen, res, res.steps_per_epoch)
    elif checkpoints is not None:
        checkpoints.clear()
    model = dd.wrap(dm)
    if progress is not None:
        progress.start(cfg.epochs * res.steps_per_epoch, loop.start * res.steps_per_epoch + loop.skip)

    def make(idx: torch.Tensor) -> Batch:
        return batch_of(idx, data.x, shift if cfg.augment == "shift" else None, targets, aug_gen, device, y_all)

    def snapshot(epoch_done: int, mid: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"epoch": epoch_done, "model": dm.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "gen": gen.get_state(), "aug_gen": aug_gen.get_state(),
                "torch_rng": torch.get_rng_state(), "best_state": loop.best_state, "bad": loop.bad,
                "history": res.history, "best_epoch": res.best_epoch, "best_score": res.best_score,
                "best_loss": res.best_loss, "step": loop.step, "mid": mid, "scaler": scaler.state_dict(),
                "steps": log.state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}

    for epoch in range(loop.start, cfg.epochs):
        if cfg.patience and loop.bad >= cfg.patience:
            break
        t0 = time.perf_counter() - loop.seconds
        dm.train()
        epoch_gen = gen.get_state()  # a mid-epoch checkpoint keeps it: resuming redraws the same order
        groups = torch.randperm(n_all, generator=gen).split(per_step)
        for k in range(loop.skip, len(groups)):
            out = step(model, groups[k], make, cfg, opt, scaler, device)
            if out is None:
                loop.total = float("nan")
                break
            loop.total, loop.count, loop.step = loop.total + out[0], loop.count + out[1], loop.step + 1
            log.add(loop.step, out[0] / max(out[1], 1))  # rank 0's share of the batch: no collective per step
            if progress is not None:
                progress.advance(epoch, loop.total / max(loop.count, 1), res.best_score, samples=len(groups[k]))
            if checkpoints is not None and cfg.checkpoint_every and loop.step % cfg.checkpoint_every == 0 \
                    and k < len(groups) - 1:  # the epoch's end writes its own
                total, count = dd.sum_over_ranks(loop.total, loop.count)
                checkpoints.save_step(snapshot(epoch - 1, {"epoch": epoch, "done": k + 1, "gen": epoch_gen,
                                                           "total": total, "count": int(count),
                                                           "seconds": time.perf_counter() - t0}))
            if on_step:
                on_step(loop.step)
        sched.step()
        # the same samples on every rank (no randomness): every rank gets the same statistics
        total, count = dd.sum_over_ranks(loop.total, loop.count)  # the loss of the whole epoch, not one shard
        loop.skip, loop.total, loop.count, loop.seconds = 0, 0.0, 0, 0.0
        loss = total / max(count, 1)
        first = res.history[0]["loss"] if res.history else None
        if (why := diverging(loss, first, epoch)) is not None:
            # stop before a checkpoint of it; the best earlier epoch (if any) is kept, and the caller judges it
            res.stopped = f"training diverged: {why}; lower --lr (now {cfg.lr:g}) or check the data for NaN or Inf"
            break
        stride = max(1, n_all // BN_SAMPLES)
        recalibrate_bn(dm.student, batches.take(data.x, slice(0, stride * BN_SAMPLES, stride)), cfg.batch_size)
        dd.sync_buffers(dm)
        score, val_loss = _score(dm.student, data)
        if score > res.best_score or (score == res.best_score and val_loss < res.best_loss):
            res.best_score, res.best_loss, res.best_epoch, loop.bad = score, val_loss, epoch, 0
            loop.best_state = {k: v.detach().clone() for k, v in dm.student.state_dict().items()}
        else:
            loop.bad += 1
        res.history.append({"epoch": epoch, "loss": loss, "val": score, "val_loss": val_loss,
                            "seconds": time.perf_counter() - t0})
        if progress is not None:
            progress.advance(epoch, loss, res.best_score, steps=0)
        if on_epoch:
            on_epoch(epoch, score)
        if checkpoints is not None:
            checkpoints.save(snapshot(epoch))
    res.step_loss = log.curve()
    if loop.best_state is not None:
        dm.student.load_state_dict(loop.best_state)
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
