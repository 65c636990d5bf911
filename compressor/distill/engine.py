"""distill(): teacher(s) -> (assistants ->) student, as a sequence of ordinary training stages.

TAKD (Mirzadeh et al. 2019) with --assistants N: stage k distils the previous stage's model into
one with ratio**(k/(N+1)) of the teacher's size; the last stage makes the student. Each stage
has its own checkpoint folder and, once finished, a done.pt, so --resume skips finished stages.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from .. import data as datasets
from ..evaluate import predict
from ..loading import LoadedModel, module_hash
from . import batches, layers, quality, runtime, students, targets
from . import distributed as dd
from .checkpoints import Checkpoints
from .config import DistillConfig, layer_count
from .methods import DistillModule, Setup, build
from .trainer import Diverged, Result, TrainData, train
from .trainset import load_teachers, training_data
from .ui import Bar

RUNS_DIR = ".compress-runs"
# do not change the result
_NOT_IN_FINGERPRINT = ("resume", "checkpoint_dir", "cache", "cache_dir", "min_kept", "checkpoint_every")
# options added after checkpoints were first written: left out at their defaults, so that the checkpoints (and
# default run folders) of a run started before they existed still resume
_NEWER = {"precision": "fp32", "grad_accum": 1}


def _options(cfg: DistillConfig) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in _NOT_IN_FINGERPRINT and not (k in _NEWER and v == _NEWER[k])}


@dataclass
class Outcome:
    student: nn.Module
    teachers: list[LoadedModel]
    stages: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str = ""
    cache_keys: list[str] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)  # what discard() removes: made by this run, not asked for
    student_info: dict[str, Any] = field(default_factory=dict)  # how the student was made (layers:K: kept layers)
    check: dict[str, Any] = field(default_factory=dict)  # the student against the teacher on validation (quality)
    kind: str = "logits"  # the distilled output's
    device: str = "cpu"  # where it trained (the student comes back on the CPU)
    threads: int | None = None  # torch's CPU threads while training on the CPU (runtime.set_threads)
    output: str = "output"  # the name of the output distilled (--distill-output), of a model with several
    budget: dict[str, Any] = field(default_factory=dict)  # --min-kept: the tries (compressor/distill/budget.py)
    config: DistillConfig | None = None  # the options this student was trained with (a fallback's, if one)
    methods: dict[str, Any] = field(default_factory=dict)  # per method, what it chose (hidden: the layer mapping)


def _fingerprint(cfg: DistillConfig, data: TrainData, teacher_shas: list[str], stage: int,
                 student: nn.Module) -> str:
    opts = _options(cfg)
    h = hashlib.sha256(json.dumps({"opts": opts, "teachers": teacher_shas, "stage": stage,
                                   "student": module_hash(student)}, default=str).encode())
    for a in (data.x, data.y, data.val_x, data.val_y):
        h.update(targets.cache.data_hash(a).encode())
    return h.hexdigest()


def run_dir(cfg: DistillConfig, teacher_shas: list[str], data: TrainData) -> Path:
    if cfg.checkpoint_dir:
        return Path(cfg.checkpoint_dir)
    opts = _options(cfg)
    text = json.dumps({"opts": opts, "teachers": teacher_shas, "data": targets.cache.data_hash(data.x)},
                      default=str)
    return Path(RUNS_DIR) / hashlib.sha256(text.encode()).hexdigest()[:16]


def _stage_student(k: int, n_stages: int, prev: nn.Module, full: float, cfg: DistillConfig,
                   example: torch.Tensor, given: nn.Module | None, info: dict[str, Any] | None = None) -> nn.Module:
    if k == n_stages - 1 and given is not None:
        return given
    measure = students.count_params if cfg.ratio_of == "params" else (lambda m: students.count_macs(m, example))
    final_ratio = cfg.ratio if given is None else measure(given) / full
    target = full * final_ratio ** ((k + 1) / n_stages)  # geometric steps from teacher to student size
    why = "--student auto" if k == n_stages - 1 else "--assistants"
    base = students.require_module(prev, "teacher", why)
    layout: dict[str, Any] = {}
    student = students.auto_student(base, example, min(1.0, target / measure(base)), cfg.ratio_of, layout)
    if layout and info is not None and k == n_stages - 1:  # a transformer: heads and MLP width kept per layer
        info["pruned"] = layout
    return students.reinitialise(student) if cfg.student_init == "random" else student


def discard(out: Outcome) -> None:
    """Remove the checkpoint folders this run created by default (.compress-runs/<hash>, and .compress-runs
    when it made it). A folder given with --checkpoint-dir, or one that was there before, is kept for --resume.
    For a caller whose later step fails after a successful distill()."""
    if dd.rank() != 0:
        return
    for d in out.created_dirs:
        if d.name == RUNS_DIR:
            try:
                d.rmdir()  # only when empty: another run's checkpoints may be in it by now
            except OSError:
                pass
        else:
            shutil.rmtree(d, ignore_errors=True)


def _created(cfg: DistillConfig, root: Path) -> list[Path]:
    """The default folders that do not exist yet (deepest first): those a failed run must not leave behind."""
    if cfg.checkpoint_dir:
        return []
    return [d for d in (root, root.parent) if not d.exists()]


def distill(teacher: LoadedModel, splits: datasets.Splits, cfg: DistillConfig, *, arch: str | None = None,
            trust_model: bool = False, console: Console | None = None) -> Outcome:
    """Train the student described by `cfg`; returns it (best validation weights) and per-stage figures.

    A run that fails (an exception, not an interruption: that keeps its checkpoints for --resume) removes
    the default checkpoint folder it created; --checkpoint-dir is always kept.
    """
    console = console or Console(stderr=True)
    if dd.is_worker():
        console = Console(stderr=True, quiet=True)
    device = dd.setup(cfg.device)
    runtime.check_precision(cfg.precision, device)  # before any work: teachers, cache, pruning
    threads = runtime.set_threads(dd.local_world()) if device.type == "cpu" else None
    teachers = load_teachers(teacher, cfg, arch, trust_model)
    example = teacher.example(1)
    data = training_data(splits, cfg, teacher, [t.module for t in teachers])
    given, info = _given_student(cfg, teacher, trust_model)
    labelled = bool((data.y >= 0).any())
    shas = [t.sha256 for t in teachers]
    root = run_dir(cfg, shas, data)
    measure = students.count_params if cfg.ratio_of == "params" else (lambda m: students.count_macs(m, example))
    full = float(measure(teachers[0].module))
    stage_teachers: list[tuple[nn.Module, str]] = [(t.module, t.sha256) for t in teachers]
    out = Outcome(student=teachers[0].module, teachers=teachers, run_dir=str(root),
                  created_dirs=_created(cfg, root), student_info=info, kind=data.kind, device=str(device),
                  threads=threads,
                  output=batches.choose_output(teacher, cfg.distill_output)[1], config=cfg)
    try:
        _stages(out, cfg, data, labelled, example, given, full, stage_teachers, root, console)
    except Exception:
        discard(out)
        raise
    if data.val_ref is not None:
        out.check = _check(out, data, splits.val.y is not None, console)
    dd.teardown()
    return out


def _given_student(cfg: DistillConfig, teacher: LoadedModel, trust_model: bool
                   ) -> tuple[nn.Module | None, dict[str, Any]]:
    """The student when it is not pruned stage by stage: layer-dropped from the teacher, or a file."""
    if cfg.student == "auto":
        return None, {"kind": "pruned", "ratio": cfg.ratio, "ratio_of": cfg.ratio_of}
    k = layer_count(cfg.student)
    if k is None:
        return students.load_student(cfg.student, teacher, cfg.student_arch, trust_model), {"kind": "file"}
    student, info = layers.drop_layers(teacher.module, k)
    if cfg.student_init == "random":
        students.reinitialise(student)
    return student, {**info, "init": cfg.student_init}


def _check(out: Outcome, data: TrainData, labelled: bool, console: Console) -> dict[str, Any]:
    """The student against the (ensemble) teacher on the validation split: a warning line at chance level, and
    the share of the teacher it keeps (`kept`, what --min-kept judges: compressor/distill/budget.py)."""
    def answer(m: nn.Module) -> np.ndarray:
        return batches.pick_array(predict(m, data.val_x), data.output)

    student = answer(out.student)
    c = quality.check(data.kind, student, data.val_ref, answer(out.teachers[0].module))
    value, metric = quality.kept(data.kind, student, data.val_ref, data.val_y, labelled)
    c |= {"kept": round(value, 6) if np.isfinite(value) else None, "kept_metric": metric}
    if c["collapsed"]:
        console.print(quality.warning(c), markup=False, highlight=False)
    return c


def _stages(out: Outcome, cfg: DistillConfig, data: TrainData, labelled: bool, example: torch.Tensor,
            given: nn.Module | None, full: float, stage_teachers: list[tuple[nn.Module, str]], root: Path,
            console: Console) -> None:
    n_stages = cfg.assistants + 1
    prev: nn.Module = out.teachers[0].module
    for k in range(n_stages):
        torch.manual_seed(cfg.seed)  # the same random initial state (memory banks, regressors) on every rank
        student = _stage_student(k, n_stages, prev, full, cfg, example, given, out.student_info)
        name = "student" if k == n_stages - 1 else f"assistant {k + 1}"
        fp = _fingerprint(cfg, data, [s for _, s in stage_teachers], k, student)
        folder = root / f"stage-{k}"
        res = _run_stage(student, stage_teachers, data, cfg, labelled, example, folder, fp, name, console, out)
        out.stages.append({"stage": k, "name": name, "teachers": len(stage_teachers),
                           **students.describe(student, example), "best_epoch": res.best_epoch,
                           "val_score": res.best_score if np.isfinite(res.best_score) else None,
                           "epochs_run": len(res.history),
                           "seconds_per_epoch": round(res.seconds_per_epoch, 4), "resumed_from": res.resumed_from,
                           "resumed_step": res.resumed_step, "checkpoints": str(folder), "device": out.device,
                           "stopped": res.stopped, "steps_per_epoch": res.steps_per_epoch,
                           "history": [{"epoch": h["epoch"], "loss": round(h["loss"], 6), "val": round(h["val"], 6),
                                        "seconds": round(h["seconds"], 4)} for h in res.history],
                           "step_loss": res.step_loss})
        prev = student
        stage_teachers = [(student, module_hash(student))]
    out.student = prev.cpu().eval()  # export, parity and the manifest's figures run on the CPU


def _run_stage(student: nn.Module, stage_teachers: list[tuple[nn.Module, str]], data: TrainData,
               cfg: DistillConfig, labelled: bool, example: torch.Tensor, folder: Path, fp: str, name: str,
               console: Console, out: Outcome) -> Result:
    setup = Setup(cfg, stage_teachers[0][0], student, example, len(data.x), data.kind)
    methods = build(setup)  # before a finished stage returns too: the manifest records what the methods chose
    out.methods = {n: d for n, m in methods.items() if (d := m.describe())}  # the last stage's: the student's
    done = folder / "done.pt"
    if cfg.resume and done.exists():
        saved = torch.load(done, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") == fp:
            student.load_state_dict(saved["student"])
            console.print(f"{name}: finished earlier, loaded from {done}")
            return Result(history=saved["history"], best_epoch=saved["best_epoch"], best_score=saved["best_score"],
                          best_loss=saved.get("best_loss", float("inf")),  # none before the loss tie-break
                          resumed_from=saved["history"][-1]["epoch"] if saved["history"] else None,
                          steps_per_epoch=saved.get("steps_per_epoch", 0), step_loss=saved.get("step_loss", []))
    if cfg.resume and not (folder / "last.pt").exists():
        # without this a mistyped --checkpoint-dir would silently retrain from epoch 0
        console.print(f"note: --resume: no checkpoint in {folder}; starting {name} from scratch")
    dm = DistillModule(student, methods, cfg, labelled, output=data.output)
    tfn = None
    if dm.needs_teacher:
        feats = dm.teacher_features
        if cfg.cache and cfg.augment == "none":
            root = Path(cfg.cache_dir) if cfg.cache_dir else targets.cache.default_dir()
            tfn, keys = targets.cached(stage_teachers, data.x, feats, root, cfg.temperature, cfg.ensemble_mean,
                                       data.kind, data.output)
            out.cache_keys.extend(keys)
        else:  # the teachers run beside the student, on its device (moved back below)
            online = [m.to(dd.device()) for m, _ in stage_teachers]
            tfn = targets.online(online, feats, cfg.temperature, cfg.ensemble_mean, data.kind, data.output)
    ckpt = Checkpoints(folder, fp)
    with Bar(console, f"{name}", cfg.epochs) as bar:
        try:
            res = train(dm, data, cfg, tfn, checkpoints=ckpt, resume=cfg.resume, progress=bar)
        finally:
            for m in (student, *(m for m, _ in stage_teachers)):
                m.cpu()
    if res.stopped:
        console.print(f"{name}: {res.stopped}", markup=False, highlight=False)
        if res.best_epoch < 0:  # no epoch worth keeping: nothing to hand on, nor to resume from
            raise Diverged(res.stopped)
    if dd.rank() == 0:
        tmp = folder / f".done.tmp-{os.getpid()}"
        torch.save({"student": student.state_dict(), "fingerprint": fp, "history": res.history,
                    "best_epoch": res.best_epoch, "best_score": res.best_score, "best_loss": res.best_loss,
                    "steps_per_epoch": res.steps_per_epoch, "step_loss": res.step_loss}, tmp)
        os.replace(tmp, done)
    dd.barrier()
    return res
