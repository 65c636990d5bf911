"""Distillation quality on scikit-learn's digits, by stratified k-fold cross-validation with paired tests.

    .venv/bin/python -m studies.distill_quality [--folds 5] [--seeds 0,1,2] [--jobs 2] [--json out.json]
    .venv/bin/python -m studies.distill_quality --quick      # smoke run: 2 folds, 1-2 epochs, 2 settings

Protocol. All 1,797 digits are split into --folds stratified folds (fixed, whatever the seed). Per fold,
a stratified --val-fraction of the training part is the validation split (best epoch, KD temperature);
the held-out fold is only scored, so every image is tested exactly once per seed.

Teachers. Per fold, DigitsCNN (65,674 parameters) trained by compressor.distill.trainer.fit on the fold's
training part with the demo's recipe (no augmentation, --teacher-epochs 30), seeds 0, 1, 2 (A, B, C).
A is the KD teacher; A+B is the two-teacher ensemble; C only adds a third seed to the teacher's spread.
An earlier run trained them with random shifts for 40 epochs (`--teacher-augment shift
--teacher-epochs 40`), hoping for a teacher that generalises better: it was worse (98.27% vs 98.68%);
docs/distillation.md keeps both runs.

Students. Channel-pruned from teacher A to <= ratio of its parameters (compressor.distill.students),
initialised from A's surviving weights ("teacher init") or at random ("random init", the same
architecture). Within a seed both arms start from the same weights, see the same batches and the
same augmentation, and train the same epochs (distill_runs.SETTINGS):
- all labels: the whole training part; r = 0.25 from the teacher (the product's default student),
  and r = 0.1 at random (a student well below the teacher, so there is a gap to close);
- the same r = 0.1 student with random shifts for 30 epochs, teacher online on the same shifted
  views: the "function matching" recipe of Beyer et al. 2022 (consistent views, longer schedule);
- the same r = 0.1 student, no augmentation, 100 epochs: KD given the longer schedule it needs
  (added later than the others, from a pilot on inner splits of folds 1-2's training parts only);
- 10% labels (a stratified 10% of the training part, fixed per fold): both arms train on those
  images only, the teacher was trained on the whole part. The practical case KD is for: a good
  teacher, little labelled data for the student. 150 epochs there = the same optimizer steps as
  15 epochs on all the data.
KD's temperature is chosen per fold and setting among --temperatures on the validation split (seed
0's runs; ties -> lower validation NLL); alpha is the product default 0.5. All settings but the
100-epoch one were chosen before any test fold was scored, from a pilot on one fold's validation
split (with 60 epochs KD was behind labels-only in 3 of 4 small-data cases, with 150 ahead in both
10% cases; with all labels the validation split is at its ceiling and showed nothing); every
setting run is reported.

Other methods run in the 10% labels, r = 0.25 setting (where KD matters) with KD's chosen
temperature, on --extra-seeds, against that setting's KD arm (teacher A) on the same seeds. "KD +
the other 90% unlabelled" trains on the whole training part with 90% of the labels hidden (teacher
predictions only), for the same number of optimizer steps.

Statistics. Accuracy is pooled over all images per seed, then mean ± std over seeds. Paired
comparisons are per image: the per-image difference (averaged over seeds) gets a 95% bootstrap CI
over images and a two-sided sign-flip permutation p-value; per seed, an exact McNemar test.
Each training run uses one thread; --jobs folds run at once (the s/epoch columns of the method table
are measured under that load; the cache timing runs alone at the end).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


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


def mean_std(xs) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    xs = [float(x) for x in xs]
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def merge(results: list[dict], n: int) -> dict:
    """Fold results -> per arm (seeds, all n images) correctness, run figures, chosen temperatures."""
    correct: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    chosen: dict[str, list[float]] = {}
    for r in sorted(results, key=lambda r: r["fold"]):
        te = r["test"]
        for arm, c in {**{f"teacher {k}": v[None] for k, v in r["teachers"].items()}, **r["correct"]}.items():
            correct.setdefault(arm, np.zeros((len(c), n), bool))[:, te] = c
        for arm, d in r["info"].items():
            got = info.setdefault(arm, {"parameters": d["parameters"], "val": [], "s_per_epoch": []})
            got["val"] += d["val"]
            got["s_per_epoch"] += d["s_per_epoch"]
        for key, t in r["chosen_t"].items():
            chosen.setdefault(key, []).append(t)
    # a fold split into two processes chose KD's temperature twice, by the same seeded runs: they must agree
    by_fold = {(r["fold"], k): t for r in results for k, t in r["chosen_t"].items()}
    mismatch = [(r["fold"], k, t, by_fold.get((r["fold"], k)))
                for r in results for k, t in r.get("chosen_t_extras", {}).items() if by_fold.get((r["fold"], k)) != t]
    return {"correct": correct, "info": info, "chosen_t": chosen, "t_mismatch": mismatch}


def main(argv: list[str] | None = None) -> int:
    from . import distill_runs as runs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--teacher-epochs", type=int, default=30)
    ap.add_argument("--teacher-augment", default="none", help="none or shift")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--temperatures", default="2,4", help="KD temperatures to choose from on validation")
    ap.add_argument("--extra-seeds", default="0,1,2", help="seeds of the other methods' rows ('' to skip them)")
    ap.add_argument("--jobs", type=int, default=2, help="folds trained at once (one thread each)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 folds, 1-2 epochs, 2 settings, seeds 0,1")
    ap.add_argument("--json", help="also write the figures (and per-image correctness) here")
    a = ap.parse_args(argv)
    settings = runs.SETTINGS
    if a.quick:
        a.folds, a.teacher_epochs, a.seeds, a.extra_seeds = 2, 2, "0,1", "0"
        settings = runs.QUICK_SETTINGS
    from compressor import data as datasets

    t_start = time.perf_counter()
    seeds = [int(s) for s in a.seeds.split(",")]
    xseeds = [int(s) for s in a.extra_seeds.split(",") if s.strip()]
    if not set(xseeds) <= set(seeds):
        raise SystemExit("--extra-seeds must be a subset of --seeds (the method rows are compared with KD's runs)")
    ds = datasets.load_digits()
    n = len(ds.y)
    work = Path(tempfile.mkdtemp(prefix="distill-quality-"))
    methods_setting = next(s for s in settings if s.label_fraction < 1)
    opts = {"seeds": seeds, "extra_seeds": xseeds, "temperatures": [float(t) for t in a.temperatures.split(",")],
            "settings": settings, "methods_setting": methods_setting, "work": str(work),
            "teacher_epochs": a.teacher_epochs, "teacher_augment": a.teacher_augment, "n_teachers": 3}
    fold_idx = folds(ds.y, a.folds, a.val_fraction)
    try:
        if a.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # two tasks per fold (KD vs labels; the other methods) of similar length keep every process busy
            tasks = [(f, part) for f in range(a.folds) for part in ("settings", "extras" if xseeds else None) if part]
            with ProcessPoolExecutor(a.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                results = list(pool.map(runs.run_fold, [f for f, _ in tasks], [fold_idx[f] for f, _ in tasks],
                                        [opts] * len(tasks), [p for _, p in tasks]))
        else:
            results = [runs.run_fold(f, idx, opts) for f, idx in enumerate(fold_idx)]
        timing = runs.cache_timing(ds, fold_idx[-1], 1 if a.quick else 5, min(a.teacher_epochs, 10), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m = merge(results, n)
    figures = report(a, seeds, xseeds, settings, methods_setting, m, timing, n)
    wall = time.perf_counter() - t_start
    print(f"\ntotal wall time {wall:.0f} s")
    if a.json:
        figures["wall_seconds"] = wall
        Path(a.json).write_text(json.dumps(figures, indent=1))
    return 0


def _ms(xs) -> str:
    mu, sd = mean_std(xs)
    return f"{100 * mu:6.2f} ± {100 * sd:4.2f}"


def _ci(pt: dict) -> str:
    return f"{100 * pt['diff']:+.2f} [{100 * pt['lo']:+.2f}, {100 * pt['hi']:+.2f}]"


def report(a, seeds, xseeds, settings, methods_setting, m, timing, n) -> dict:
    correct, info, chosen_t = m["correct"], m["info"], m["chosen_t"]
    acc = {arm: [float(row.mean()) for row in c] for arm, c in correct.items()}
    teacher_names = [k for k in acc if k.startswith("teacher ")]
    t_all = [acc[k][0] for k in teacher_names]
    print(f"\nDistillation on digits: {a.folds}-fold stratified cross-validation over all {n} images "
          f"(each tested once per seed), seeds {seeds}; accuracy pooled over folds, mean ± std over seeds\n")
    print(f"teachers (DigitsCNN, 65,674 params, {a.teacher_epochs} epochs, augment {a.teacher_augment}): " +
          ", ".join(f"{k} {100 * acc[k][0]:.2f}%" for k in teacher_names) + f"; mean ± std {_ms(t_all)}")
    print("\nKD vs labels-only: same student, data, augmentation, epochs and initial weights per seed "
          "(diff = KD - labels, points; CI: 95% bootstrap over images; p: sign-flip permutation over images; "
          "kept = KD / teacher A)\n")
    print(f"| {'setting':49} | {'params':>6} | {'labels only %':>13} | {'KD %':>13} | {'kept':>6} | {'T':>9} | "
          f"{'diff [95% CI]':>22} | {'p':>6} | McNemar per seed: KD-only/labels-only p |")
    print(f"|{'-' * 51}|{'-' * 8}|{'-' * 15}|{'-' * 15}|{'-' * 8}|{'-' * 11}|{'-' * 24}|{'-' * 8}|{'-' * 41}|")
    figures = {"accuracy": acc, "info": info, "temperatures_chosen": chosen_t, "timing": timing, "paired": {},
               "settings": [vars(s) for s in settings],
               "correct": {arm: c.astype(int).tolist() for arm, c in correct.items()}}  # per image, to re-test
    for s in settings:
        lab, kd = correct[f"{s.key} | labels"], correct[f"{s.key} | KD"]
        pt = paired_test(kd, lab)
        mc = [mcnemar(kd[i], lab[i]) for i in range(len(seeds))]
        kept = statistics.mean(acc[f"{s.key} | KD"]) / acc["teacher A"][0]
        figures["paired"][s.key] = {**pt, "mcnemar": mc, "kept": kept}
        ts = ",".join(f"{t:g}" for t in chosen_t[s.key])
        mcs = " ".join(f"{b}/{c} {p:.2f}" for b, c, p in mc)
        print(f"| {s.key:49} | {info[s.key + ' | KD']['parameters']:6,} | {_ms(acc[s.key + ' | labels']):>13} | "
              f"{_ms(acc[s.key + ' | KD']):>13} | {100 * kept:5.1f}% | {ts:>9} | {_ci(pt):>22} | {pt['p']:6.3f} | "
              f"{mcs:39} |")
    first = True
    for s in settings:  # augmentation changes both arms: compare with the same student's plain arms too
        plain = next((p for p in settings if p.augment == "none" and (p.ratio, p.init, p.label_fraction) ==
                      (s.ratio, s.init, s.label_fraction)), None)
        if s.augment == "none" or plain is None:
            continue
        if first:
            print("\nWith augmentation vs the same student without it (paired over images):")
            first = False
        for arm in ("labels", "KD"):
            pt = paired_test(correct[f"{s.key} | KD"], correct[f"{plain.key} | {arm}"])
            figures["paired"][f"{s.key} | KD vs {plain.key} | {arm}"] = pt
            print(f"  {s.key} KD vs {plain.key} {arm} ({plain.epochs} epochs): {_ci(pt)} points, "
                  f"p = {pt['p']:.3f}")
    if xseeds:
        key = methods_setting.key
        rows = [seeds.index(x) for x in xseeds]
        ref = correct[f"{key} | KD"][rows]
        kd_label = "KD, teacher A (reference)"
        correct_x = {"labels only": correct[f"{key} | labels"][rows], kd_label: ref}
        correct_x.update({label: correct[label] for label, _, _ in runs_extra()})
        print(f"\nOther methods ({key}, T as chosen for KD, seeds {xseeds}); diff vs KD from teacher A alone, "
              "paired over images\n")
        print(f"| {'method':32} | {'params':>6} | {'test acc %':>13} | {'val %, all runs':>15} | "
              f"{'diff vs KD(A) [95% CI]':>24} | {'p':>6} | {'s/epoch':>7} |")
        print(f"|{'-' * 34}|{'-' * 8}|{'-' * 15}|{'-' * 17}|{'-' * 26}|{'-' * 8}|{'-' * 9}|")
        arm_info = {"labels only": f"{key} | labels", kd_label: f"{key} | KD"}
        for label, c in correct_x.items():
            pt = paired_test(c, ref)
            figures["paired"][label] = pt
            d = info[arm_info.get(label, label)]
            print(f"| {label:32} | {d['parameters']:6,} | {_ms([r.mean() for r in c]):>13} | "
                  f"{_ms(d['val']):>15} | {_ci(pt):>24} | {pt['p']:6.3f} | {statistics.mean(d['s_per_epoch']):7.3f} |")
        print()
        from .distill_runs import ensemble_labels

        for label in ensemble_labels():
            for single, c in (("teacher A", ref), ("teacher B", correct["KD, teacher B alone"])):
                pt = paired_test(correct[label], c)
                figures["paired"][f"{label} vs {single}"] = pt
                print(f"{label} vs KD from {single} alone: {_ci(pt)} points, p = {pt['p']:.3f}")
    if m["t_mismatch"]:
        print(f"\nWARNING: the two processes of a fold chose different KD temperatures (fold, setting, extras, "
              f"settings): {m['t_mismatch']}")
    figures["t_mismatch"] = m["t_mismatch"]
    print(f"\nwall time per epoch (KD, r=0.25, all labels of the last fold, 1 thread, nothing else of ours running): "
          f"teacher-output cache {timing['cached']:.3f} s, teacher online {timing['online']:.3f} s "
          f"({timing['online'] / timing['cached']:.2f}x)")
    return figures


def runs_extra():
    from .distill_runs import extra_rows

    return extra_rows()


if __name__ == "__main__":
    sys.exit(main())
