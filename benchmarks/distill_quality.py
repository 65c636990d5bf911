"""Distillation quality on scikit-learn's digits, by stratified k-fold cross-validation with paired tests.

    .venv/bin/python -m benchmarks.distill_quality [--folds 5] [--epochs 15] [--seeds 0,1,2] [--json out.json]
    .venv/bin/python -m benchmarks.distill_quality --quick      # a short smoke run (2 folds, 1 epoch)

Protocol. All 1,797 digits are split into --folds stratified folds (fixed, whatever the seed). Per fold,
a stratified --val-fraction of the training part is the validation split (best epoch, KD temperature);
the held-out fold is only scored, so every image is tested exactly once per seed. Per fold, teacher A
is DigitsCNN trained with the demo recipe (compressor.train.fit, demo.EPOCHS epochs, seed 0) on the
fold's training part, teacher B the same with seed 1. Students are channel-pruned from teacher A to
<= --ratios of its parameters, initialised from its surviving weights ("teacher") or at random
("random", the same architecture); within a seed both arms start from the same weights and see the
same batches. KD's temperature is chosen per fold and student setting among --temperatures on that
fold's validation split (seed 0's runs; ties -> lower validation NLL), alpha is the default 0.5.

Statistics. Accuracy is pooled over all images per seed, then mean ± std over seeds. KD vs labels-only
is paired per image: the per-image difference (averaged over seeds) gets a 95% bootstrap CI over images
and a two-sided sign-flip permutation p-value; per seed, an exact McNemar test (b = only KD right,
c = only labels right). One thread, one run at a time.
"""
from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def folds(y: np.ndarray, k: int, val_fraction: float, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """(train, val, test) index arrays per fold: stratified k-fold, val carved stratified from the train part."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    out = []
    for i, (rest, test) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y)):
        tr, va = train_test_split(rest, test_size=val_fraction, stratify=y[rest], random_state=seed + i)
        out.append((np.sort(tr), np.sort(va), np.sort(test)))
    return out


def mcnemar(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """Exact McNemar test of paired correctness vectors: (only a right, only b right, two-sided p)."""
    from scipy.stats import binomtest

    n_a, n_b = int((a & ~b).sum()), int((~a & b).sum())
    return n_a, n_b, (binomtest(n_a, n_a + n_b, 0.5).pvalue if n_a + n_b else 1.0)


def paired_test(a: np.ndarray, b: np.ndarray, n: int = 10000, seed: int = 0) -> dict[str, float]:
    """a, b: (seeds, images) correctness. Mean a-b, 95% bootstrap CI over images, sign-flip permutation p."""
    d = (a.astype(np.float64) - b.astype(np.float64)).reshape(-1, a.shape[-1]).mean(0)  # per image
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), (n, len(d)))].mean(1)
    flips = (rng.integers(0, 2, (n, len(d))) * 2 - 1) @ d / len(d)
    p = (1 + int((np.abs(flips) >= abs(d.mean()) - 1e-12).sum())) / (n + 1)
    return {"diff": float(d.mean()), "lo": float(np.quantile(boot, 0.025)), "hi": float(np.quantile(boot, 0.975)),
            "p": p}


def _fold_splits(ds, idx, hide_half: bool = False):
    from compressor import data as datasets

    def part(i, y=None):
        return datasets.Dataset(ds.x[i], ds.y[i] if y is None else y, ds.classes, ds.source)

    tr, va, te = idx
    y = ds.y[tr].copy()
    if hide_half:
        y[1::2] = -1  # every other training label hidden: KD targets only for those rows
    return datasets.Splits(part(tr, y), part(va), part(te))


def _teacher(sp, seed: int, epochs: int):
    from compressor.loading import from_module
    from compressor.models import DigitsCNN
    from compressor.train import fit

    torch.manual_seed(seed)  # the same initial weights for a given seed, whatever ran before
    model = fit(DigitsCNN(width=32), sp.train, sp.val, epochs=epochs, seed=seed)
    return from_module(model.eval(), name=f"DigitsCNN seed {seed}")


def extra_rows() -> list[tuple[str, str, dict]]:
    """(label, teacher set, DistillConfig changes) for the other methods, ratio 0.25, teacher init."""
    return [
        ("DKD", "A", {"methods": ("dkd",)}),
        ("KD + hint (FitNets)", "A", {"methods": ("kd", "hint"), "hints": ("features.8:features.8",)}),
        ("KD + CRD", "A", {"methods": ("kd", "crd")}),
        ("KD + DKD", "A", {"methods": ("kd", "dkd"), "weights": (1.0, 0.5)}),
        ("TAKD (1 assistant), KD", "A", {"assistants": 1}),
        ("KD, half the labels hidden", "A-half", {}),
        ("KD, teacher B alone", "B", {}),
        ("KD, ensemble A+B arithmetic", "AB", {}),
        ("KD, ensemble A+B geometric", "AB", {"ensemble_mean": "geometric"}),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--epochs", type=int, default=15, help="student epochs, the same for every arm")
    ap.add_argument("--teacher-epochs", type=int, default=None, help="default: the demo recipe's")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--ratios", default="0.25,0.1", help="student sizes (fraction of teacher parameters)")
    ap.add_argument("--temperatures", default="2,4", help="KD temperatures to choose from on validation")
    ap.add_argument("--extra-seeds", default="0", help="seeds for the other methods' rows ('' to skip them)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 folds, 1 epoch, seeds 0,1")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    if a.quick:
        a.folds, a.epochs, a.teacher_epochs, a.seeds, a.extra_seeds = 2, 1, 2, "0,1", "0"
    torch.set_num_threads(1)
    from rich.console import Console

    from compressor import data as datasets
    from compressor import demo
    from compressor.distill.config import DistillConfig
    from compressor.distill.engine import distill
    from compressor.train import predict

    t_start = time.perf_counter()
    quiet = Console(stderr=True, quiet=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    xseeds = [int(s) for s in a.extra_seeds.split(",") if s.strip()]
    ratios = [float(r) for r in a.ratios.split(",")]
    temps = [float(t) for t in a.temperatures.split(",")]
    t_epochs = a.teacher_epochs or demo.EPOCHS
    ds = datasets.load_digits()
    n = len(ds.y)
    work = Path(tempfile.mkdtemp(prefix="distill-quality-"))
    atexit.register(shutil.rmtree, work, True)  # ~100 MB of per-epoch checkpoints, of no use afterwards
    settings = [(r, init) for r in ratios for init in ("teacher", "random")]
    correct: dict[str, np.ndarray] = {}  # arm -> (seeds, images) test correctness
    info: dict[str, dict] = {}
    chosen_t: dict[str, list[float]] = {}

    def record(arm, s_list, si, te, pred, out=None):
        correct.setdefault(arm, np.zeros((len(s_list), n), bool))[si, te] = pred == ds.y[te]
        if out is not None:
            st = out.stages[-1]
            d = info.setdefault(arm, {"parameters": st["parameters"], "val": [], "s_per_epoch": []})
            d["val"].append(st["val_score"])
            d["s_per_epoch"].append(st["seconds_per_epoch"])

    def run(teacher, sp, seed, tag, **changes):
        cfg = DistillConfig(epochs=a.epochs, seed=seed, cache_dir=str(work / "cache"),
                            checkpoint_dir=str(work / "runs" / tag), **changes)
        out = distill(teacher, sp, cfg, trust_model=True, console=quiet)
        val_logits = torch.from_numpy(predict(out.student, sp.val.x))
        nll = float(torch.nn.functional.cross_entropy(val_logits, torch.from_numpy(sp.val.y)))
        return out, predict(out.student, sp.test.x).argmax(1), (out.stages[-1]["val_score"], -nll)

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    fold_idx = folds(ds.y, a.folds, a.val_fraction)
    for f, idx in enumerate(fold_idx):
        sp, te = _fold_splits(ds, idx), idx[2]
        ta = _teacher(sp, 0, t_epochs)
        tb = _teacher(sp, 1, t_epochs) if xseeds else None
        for name, t in (("teacher A", ta), ("teacher B", tb)):
            if t is not None:
                record(name, [0], 0, te, predict(t.module, sp.test.x).argmax(1))
        log(f"fold {f + 1}/{a.folds}: {len(idx[0])} train, {len(idx[1])} val, {len(te)} test; teachers trained")
        for r, init in settings:
            base = {"ratio": r, "student_init": init}
            key = f"r={r:g} {init}"
            for si, seed in enumerate(seeds):
                out, pred, _ = run(ta, sp, seed, f"{f}-{key}-labels-{seed}", methods=("labels",), **base)
                record(f"{key} labels", seeds, si, te, pred, out)
                if si == 0:  # temperature chosen on this fold's validation split, from seed 0's runs
                    tried = {t: run(ta, sp, seed, f"{f}-{key}-kd{t:g}-{seed}", methods=("kd",), temperature=t,
                                    **base) for t in temps}
                    best = max(temps, key=lambda t: tried[t][2])
                    chosen_t.setdefault(key, []).append(best)
                    out, pred, _ = tried[best]
                else:
                    out, pred, _ = run(ta, sp, seed, f"{f}-{key}-kd-{seed}", methods=("kd",),
                                       temperature=chosen_t[key][-1], **base)
                record(f"{key} KD", seeds, si, te, pred, out)
            log(f"  {key}: done (T={chosen_t[key][-1]:g})")
        if xseeds:
            b_file = work / f"teacher_b_{f}.pt"
            torch.save(tb.module, b_file)
            half = _fold_splits(ds, idx, hide_half=True)
            t_kd = chosen_t[f"r={ratios[0]:g} teacher"][-1]
            for label, which, changes in [("KD, teacher A", "A", {})] + extra_rows():
                changes = {"ratio": ratios[0], "temperature": t_kd, "methods": ("kd",), **changes}
                if which == "AB":
                    changes["teachers"] = (str(b_file),)
                for si, seed in enumerate(xseeds):
                    out, pred, _ = run(tb if which == "B" else ta, half if which == "A-half" else sp, seed,
                                       f"{f}-{label}-{seed}", **changes)
                    record(label, xseeds, si, te, pred, out)
            log("  other methods: done")
    timing = _cache_timing(ta, sp, min(a.epochs, 5), work)
    figures = _report(a, seeds, xseeds, settings, correct, info, chosen_t, timing, n)
    print(f"\ntotal wall time {time.perf_counter() - t_start:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))
    return 0


def _cache_timing(teacher, splits, epochs: int, work: Path) -> dict[str, float]:
    """Seconds per epoch of KD with the teacher-output cache, and with the teacher run online."""
    from rich.console import Console

    from compressor.distill.config import DistillConfig
    from compressor.distill.engine import distill

    out = {}
    for name, cache in (("cached", True), ("online", False)):
        cfg = DistillConfig(ratio=0.25, epochs=epochs, cache=cache, cache_dir=str(work / "cache-timing"),
                            checkpoint_dir=str(work / "runs" / f"timing-{name}"))
        o = distill(teacher, splits, cfg, console=Console(stderr=True, quiet=True))
        out[name] = o.stages[-1]["seconds_per_epoch"]
    return out


def _ms(xs) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * statistics.mean(xs):6.2f} ± {100 * sd:4.2f}"


def _report(a, seeds, xseeds, settings, correct, info, chosen_t, timing, n) -> dict:
    acc = {arm: [float(row.mean()) for row in c] for arm, c in correct.items()}
    print(f"\nDistillation on digits: {a.folds}-fold stratified cross-validation over all {n} images "
          f"(each tested once per seed), {a.epochs} student epochs, seeds {seeds}; accuracy pooled over "
          "folds, mean ± std over seeds\n")
    print(f"teacher A (DigitsCNN, demo recipe, seed 0): {100 * acc['teacher A'][0]:.2f}%" +
          (f"; teacher B (seed 1): {100 * acc['teacher B'][0]:.2f}%" if "teacher B" in acc else ""))
    print("\nKD vs labels-only, same student architecture and the same initial weights per seed "
          "(diff = KD - labels, points; CI: 95% bootstrap over images; p: sign-flip permutation over images)\n")
    print(f"| {'student':16} | {'params':>6} | {'labels only %':>13} | {'KD %':>13} | {'T chosen':>9} | "
          f"{'diff [95% CI]':>21} | {'p':>6} | {'McNemar per seed: KD-only/labels-only p':40} |")
    print(f"|{'-' * 18}|{'-' * 8}|{'-' * 15}|{'-' * 15}|{'-' * 11}|{'-' * 23}|{'-' * 8}|{'-' * 42}|")
    figures = {"accuracy": acc, "info": info, "temperatures_chosen": chosen_t, "timing": timing, "paired": {},
               "correct": {arm: c.astype(int).tolist() for arm, c in correct.items()}}  # per image, to re-test
    for r, init in settings:
        key = f"r={r:g} {init}"
        lab, kd = correct[f"{key} labels"], correct[f"{key} KD"]
        pt = paired_test(kd, lab)
        mc = [mcnemar(kd[i], lab[i]) for i in range(len(seeds))]
        figures["paired"][key] = {**pt, "mcnemar": mc}
        ts = ",".join(f"{t:g}" for t in chosen_t[key])
        mcs = " ".join(f"{b}/{c} {p:.2f}" for b, c, p in mc)
        ci = f"{100 * pt['diff']:+.2f} [{100 * pt['lo']:+.2f},{100 * pt['hi']:+.2f}]"
        print(f"| {key:16} | {info[key + ' KD']['parameters']:6,} | {_ms(acc[key + ' labels']):>13} | "
              f"{_ms(acc[key + ' KD']):>13} | {ts:>9} | {ci:>21} | {pt['p']:6.3f} | {mcs:40} |")
    if xseeds:
        ref = correct["KD, teacher A"]
        print(f"\nOther methods (ratio {settings[0][0]:g}, teacher init, T as chosen for KD, seeds {xseeds}); "
              "vs KD from teacher A alone, paired over images\n")
        print(f"| {'method':32} | {'params':>6} | {'test acc %':>13} | {'val %, per run':>14} | "
              f"{'diff vs KD(A) [95% CI]':>22} | {'p':>6} | {'s/epoch':>7} |")
        print(f"|{'-' * 34}|{'-' * 8}|{'-' * 15}|{'-' * 16}|{'-' * 24}|{'-' * 8}|{'-' * 9}|")
        for label in ["KD, teacher A"] + [r[0] for r in extra_rows()]:
            pt = paired_test(correct[label], ref)
            figures["paired"][label] = pt
            ci = f"{100 * pt['diff']:+.2f} [{100 * pt['lo']:+.2f},{100 * pt['hi']:+.2f}]"
            print(f"| {label:32} | {info[label]['parameters']:6,} | {_ms(acc[label]):>13} | "
                  f"{_ms(info[label]['val']):>14} | {ci:>22} | {pt['p']:6.3f} | "
                  f"{statistics.mean(info[label]['s_per_epoch']):7.3f} |")
        for label in ("KD, ensemble A+B arithmetic", "KD, ensemble A+B geometric"):
            pt = paired_test(correct[label], correct["KD, teacher B alone"])
            print(f"{label} vs KD from teacher B alone: {100 * pt['diff']:+.2f} points "
                  f"[{100 * pt['lo']:+.2f},{100 * pt['hi']:+.2f}], p = {pt['p']:.3f}")
    print(f"\nwall time per epoch (KD, 1 thread, last fold): teacher-output cache {timing['cached']:.3f} s, "
          f"teacher online {timing['online']:.3f} s ({timing['online'] / timing['cached']:.2f}x)")
    return figures


if __name__ == "__main__":
    sys.exit(main())
