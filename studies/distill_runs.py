"""The training runs behind studies.distill_quality: one fold's teachers, students and method rows.

Everything trains through the product (compressor.distill.trainer.fit for teachers, compressor.distill.engine
.distill for students); this module only decides what runs on which data. One fold is one call of
`run_fold`, so folds can run in separate processes; the result is plain numpy/dicts (picklable).
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class Setting:
    """One KD-vs-labels comparison: the same student architecture, data, augmentation and epochs for both arms."""

    key: str
    ratio: float  # student parameters / teacher parameters (--student auto --ratio)
    init: str  # "teacher" (pruned teacher weights) or "random"
    label_fraction: float = 1.0  # < 1: both arms see only this stratified fraction of the training fold
    augment: str = "none"  # "shift": both arms see the same random translations; KD's teacher runs online
    epochs: int = 15


# 150 epochs on 10% of a fold = 300 optimizer steps (2 batches of 64 per epoch), the same number of
# steps as 15 epochs on the whole fold (20 batches): the limited-label arms are not short of training.
SETTINGS = (
    Setting("all labels, r=0.25, teacher init", 0.25, "teacher"),
    Setting("all labels, r=0.1, random init", 0.1, "random"),
    Setting("all labels, r=0.1, random init, shift aug, 30 ep", 0.1, "random", augment="shift", epochs=30),
    # KD needs a longer schedule than labels alone ("a good teacher is patient", Beyer et al. 2022); chosen
    # from a pilot on inner splits of two folds' training parts (docs/distillation.md), not on test folds
    Setting("all labels, r=0.1, random init, 100 ep", 0.1, "random", epochs=100),
    Setting("10% labels, r=0.25, random init", 0.25, "random", label_fraction=0.1, epochs=150),
    Setting("10% labels, r=0.1, random init", 0.1, "random", label_fraction=0.1, epochs=150),
)
QUICK_SETTINGS = (
    Setting("all labels, r=0.25, teacher init", 0.25, "teacher", epochs=1),
    Setting("10% labels, r=0.25, random init", 0.25, "random", label_fraction=0.1, epochs=2),
)


def extra_rows() -> list[tuple[str, str, dict]]:
    """(label, teachers/data, DistillConfig changes) of the other methods, run in the METHODS_SETTING."""
    return [
        ("DKD", "A", {"methods": ("dkd",)}),
        ("KD + hint (FitNets)", "A", {"methods": ("kd", "hint"), "hints": ("features.8:features.8",)}),
        ("KD + CRD", "A", {"methods": ("kd", "crd")}),
        ("KD + DKD", "A", {"methods": ("kd", "dkd"), "weights": (1.0, 0.5)}),
        ("TAKD (1 assistant), KD", "A", {"assistants": 1}),
        ("KD + the other 90% unlabelled", "A-unlabelled", {}),
        ("KD, teacher B alone", "B", {}),
        ("KD, ensemble A+B arithmetic", "AB", {}),
        ("KD, ensemble A+B geometric", "AB", {"ensemble_mean": "geometric"}),
    ]


def ensemble_labels() -> list[str]:
    """The extra rows distilled from the A+B ensemble: each is compared with each single teacher's student."""
    return [label for label, which, _ in extra_rows() if which == "AB"]


def label_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified `fraction` of `y` (at least one per class); all of them when fraction >= 1."""
    from sklearn.model_selection import train_test_split

    if fraction >= 1.0:
        return np.arange(len(y))
    n = max(len(np.unique(y)), round(fraction * len(y)))
    keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(keep)


def fold_splits(ds, idx, fraction: float = 1.0, mode: str = "subset"):
    """Splits of one fold. fraction < 1: "subset" trains on the labelled fraction only; "unlabelled" keeps
    every training image but hides the other labels (-1: only the teacher's predictions are targets)."""
    from compressor import data as datasets

    def part(i, y=None):
        return datasets.Dataset(ds.x[i], ds.y[i] if y is None else y, ds.classes, ds.source)

    tr, va, te = idx
    keep = label_subset(ds.y[tr], fraction, seed=0)  # fixed per fold: the same for every seed and arm
    if mode == "subset":
        train = part(tr[keep])
    else:
        y = np.full(len(tr), -1, np.int64)
        y[keep] = ds.y[tr][keep]
        train = part(tr, y)
    return datasets.Splits(train, part(va), part(te))


def train_teacher(sp, seed: int, epochs: int, augment: str):
    from compressor.distill.trainer import fit
    from compressor.loading import from_module
    from compressor.models import DigitsCNN

    torch.manual_seed(seed)  # the same initial weights for a given seed, whatever ran before
    model = fit(DigitsCNN(width=32), sp.train, sp.val, epochs=epochs, seed=seed, augment=augment)
    return from_module(model.eval(), name=f"DigitsCNN seed {seed}")


def run_fold(f: int, idx, opts: dict, part: str = "all") -> dict:
    """The runs of fold `f`: part "settings" (teachers, KD vs labels), "extras" (the other methods), or "all".

    Returns test correctness per arm (seeds, fold test images) and run figures. "extras" retrains
    teachers A and B and re-chooses KD's temperature for its setting: the same seeded runs on one
    thread, so the same models and the same choice as "settings" (recorded to check, see merge).
    """
    from rich.console import Console

    from compressor import data as datasets
    from compressor.distill.config import DistillConfig
    from compressor.distill.engine import distill
    from compressor.evaluate import predict

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ds = datasets.load_digits()
    seeds, xseeds, temps = opts["seeds"], opts["extra_seeds"], opts["temperatures"]
    settings: tuple[Setting, ...] = opts["settings"]
    work = Path(opts["work"]) / f"fold-{f}-{part}"
    quiet = Console(stderr=True, quiet=True)
    te = idx[2]
    out: dict = {"fold": f, "part": part, "test": te, "correct": {}, "info": {}, "chosen_t": {}, "teachers": {}}
    if part == "extras":
        settings = (opts["methods_setting"],)

    def log(msg):
        print(f"[fold {f + 1}, {time.perf_counter() - t0:5.0f} s] {msg}", file=sys.stderr, flush=True)

    def record(arm, n_seeds, si, pred, res=None):
        out["correct"].setdefault(arm, np.zeros((n_seeds, len(te)), bool))[si] = pred == ds.y[te]
        if res is not None:
            st = res.stages[-1]
            d = out["info"].setdefault(arm, {"parameters": st["parameters"], "val": [], "s_per_epoch": []})
            d["val"].append(st["val_score"])
            d["s_per_epoch"].append(st["seconds_per_epoch"])

    def run(teacher, sp, seed, tag, **changes):
        cfg = DistillConfig(seed=seed, cache_dir=str(work / "cache"), checkpoint_dir=str(work / "runs" / tag),
                            **changes)
        res = distill(teacher, sp, cfg, trust_model=True, console=quiet)
        shutil.rmtree(work / "runs" / tag, ignore_errors=True)  # per-epoch checkpoints: of no use afterwards
        val_logits = torch.from_numpy(predict(res.student, sp.val.x))
        nll = float(torch.nn.functional.cross_entropy(val_logits, torch.from_numpy(sp.val.y)))
        return res, predict(res.student, sp.test.x).argmax(1), (res.stages[-1]["val_score"], -nll)

    full = fold_splits(ds, idx)
    teachers = {}
    for name, seed in (("A", 0), ("B", 1), ("C", 2))[:2 if part == "extras" else opts["n_teachers"]]:
        teachers[name] = train_teacher(full, seed, opts["teacher_epochs"], opts["teacher_augment"])
        if part != "extras":  # reported once, by the "settings" part
            out["teachers"][name] = predict(teachers[name].module, full.test.x).argmax(1) == ds.y[te]
    ta = teachers["A"]
    log(f"{len(idx[0])} train, {len(idx[1])} val, {len(te)} test; teachers {', '.join(teachers)} trained"
        + (f" ({', '.join(f'{k} {100 * v.mean():.2f}%' for k, v in out['teachers'].items())})" if out["teachers"]
           else " (for the other methods)"))
    for s in settings if part != "extras" else ():
        sp = fold_splits(ds, idx, s.label_fraction)
        base = {"ratio": s.ratio, "student_init": s.init, "augment": s.augment, "epochs": s.epochs}
        for si, seed in enumerate(seeds):
            res, pred, _ = run(ta, sp, seed, f"{s.key}-labels-{seed}", methods=("labels",), **base)
            record(f"{s.key} | labels", len(seeds), si, pred, res)
            if si == 0:  # KD's temperature: chosen on this fold's validation split, from seed 0's runs
                tried = {t: run(ta, sp, seed, f"{s.key}-kd{t:g}-{seed}", methods=("kd",), temperature=t, **base)
                         for t in temps}
                best = max(temps, key=lambda t: tried[t][2])  # validation accuracy, then validation NLL
                out["chosen_t"][s.key] = best
                res, pred, _ = tried[best]
            else:
                res, pred, _ = run(ta, sp, seed, f"{s.key}-kd-{seed}", methods=("kd",),
                                   temperature=out["chosen_t"][s.key], **base)
            record(f"{s.key} | KD", len(seeds), si, pred, res)
        log(f"{s.key}: done (T={out['chosen_t'][s.key]:g})")
    if part == "extras":  # the temperature of the methods setting's KD, chosen as in the "settings" part
        s = opts["methods_setting"]
        sp = fold_splits(ds, idx, s.label_fraction)
        base = {"ratio": s.ratio, "student_init": s.init, "augment": s.augment, "epochs": s.epochs}
        tried = {t: run(ta, sp, seeds[0], f"{s.key}-kd{t:g}", methods=("kd",), temperature=t, **base)[2]
                 for t in temps}
        out["chosen_t_extras"] = {s.key: max(temps, key=lambda t: tried[t])}
        out["chosen_t"] = out["chosen_t_extras"]
    if xseeds and part != "settings":
        s = opts["methods_setting"]
        b_file = work / "teacher_b.pt"
        torch.save(teachers["B"].module, b_file)
        sp = fold_splits(ds, idx, s.label_fraction)
        sp_unlab = fold_splits(ds, idx, s.label_fraction, mode="unlabelled")
        for label, which, changes in extra_rows():
            changes = {"ratio": s.ratio, "student_init": s.init, "augment": s.augment, "epochs": s.epochs,
                       "temperature": out["chosen_t"][s.key], "methods": ("kd",), **changes}
            if which == "AB":
                changes["teachers"] = (str(b_file),)
            data = sp
            if which == "A-unlabelled":  # all the fold's images: epochs scaled to the same optimizer steps
                data = sp_unlab
                changes["epochs"] = max(1, round(s.epochs * s.label_fraction))
            for si, seed in enumerate(xseeds):
                res, pred, _ = run(teachers["B"] if which == "B" else ta, data, seed, f"{label}-{seed}", **changes)
                record(label, len(xseeds), si, pred, res)
        log("other methods: done")
    if part == "extras":
        out["chosen_t"] = {}  # the "settings" part reports the choice; merge checks they agree
    shutil.rmtree(work, ignore_errors=True)
    return out


def cache_timing(ds, idx, epochs: int, teacher_epochs: int, work: Path) -> dict[str, float]:
    """Seconds per epoch of KD (ratio 0.25, all labels) with the teacher-output cache, and with the teacher online."""
    from rich.console import Console

    from compressor.distill.config import DistillConfig
    from compressor.distill.engine import distill

    torch.set_num_threads(1)
    sp = fold_splits(ds, idx)
    teacher = train_teacher(sp, 0, teacher_epochs, "none")
    out = {}
    for name, cache in (("cached", True), ("online", False)):
        cfg = DistillConfig(ratio=0.25, epochs=epochs, cache=cache, cache_dir=str(work / "cache-timing"),
                            checkpoint_dir=str(work / "runs" / f"timing-{name}"))
        res = distill(teacher, sp, cfg, console=Console(stderr=True, quiet=True))
        out[name] = res.stages[-1]["seconds_per_epoch"]
    return out
