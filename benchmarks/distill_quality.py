"""Distillation quality on scikit-learn's digits: every method, 3 seeds, mean ± std on the held-out test split.

    .venv/bin/python -m benchmarks.distill_quality [--epochs 30] [--seeds 0,1,2] [--json out.json]

Teacher A is the built-in demo teacher (DigitsCNN, 65,674 parameters); teacher B the same recipe
trained with another seed. Every student is `--student auto --ratio 0.25` (channel-pruned from
its teacher with L1 importance, so <= 1/4 of the parameters) and trained for the same epochs;
seeds change the data order and the methods' random parts. The KD temperature is chosen among
--temperatures by mean validation accuracy, alpha is the default 0.5, and each run keeps its best
epoch on the validation split: the test split is only reported. One thread, one run at a time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _teacher_b(splits):
    from compressor.loading import from_module
    from compressor.models import DigitsCNN
    from compressor.train import fit

    torch.manual_seed(1)
    model = fit(DigitsCNN(width=32), splits.train, splits.val, epochs=30, seed=1)
    return from_module(model, name="teacher B (DigitsCNN, seed 1)")


def rows(temperature: float) -> list[tuple[str, str, dict]]:
    """(label, teacher set, DistillConfig changes) for every benchmarked student."""
    kd = {"methods": ("kd",), "temperature": temperature}
    return [
        ("labels only (same student)", "A", {"methods": ("labels",)}),
        ("KD", "A", kd),
        ("DKD", "A", {"methods": ("dkd",), "temperature": temperature}),
        ("KD + hint (FitNets)", "A", {**kd, "methods": ("kd", "hint"), "hints": ("features.8:features.8",)}),
        ("KD + CRD", "A", {**kd, "methods": ("kd", "crd")}),
        ("KD + DKD", "A", {**kd, "methods": ("kd", "dkd"), "weights": (1.0, 0.5)}),
        ("TAKD (1 assistant), KD", "A", {**kd, "assistants": 1}),
        ("KD, half the labels hidden (unlabelled)", "A-half", kd),
        ("labels only, random init (same arch.)", "A", {"methods": ("labels",), "student_init": "random"}),
        ("KD, random init (same arch.)", "A", {**kd, "student_init": "random"}),
        ("KD, teacher B alone", "B", kd),
        ("KD, ensemble A+B arithmetic", "AB", kd),
        ("KD, ensemble A+B geometric", "AB", {**kd, "ensemble_mean": "geometric"}),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--temperatures", default="2,4,8", help="KD temperatures to choose from on validation")
    ap.add_argument("--only", help="comma-separated row numbers to run (1-based), for a quick look")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from rich.console import Console

    from compressor import data as datasets
    from compressor import demo
    from compressor.distill.config import DistillConfig
    from compressor.distill.engine import distill
    from compressor.train import accuracy

    quiet = Console(stderr=True, quiet=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    splits = datasets.split(datasets.load_digits(), seed=0)  # the split the demo teacher was trained on
    tr = splits.train
    half = datasets.Splits(datasets.Dataset(tr.x, tr.y.copy(), tr.classes, tr.source), splits.val, splits.test)
    half.train.y[1::2] = -1  # every other training label hidden: KD targets only for those rows
    t0 = time.perf_counter()
    teacher_a = demo.teacher()
    teacher_b = _teacher_b(splits)
    print(f"teachers ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="distill-quality-"))
    b_file = work / "teacher_b.pt"
    torch.save(teacher_b.module, b_file)
    results: list[dict] = []
    t_acc = {"A": accuracy(teacher_a.module, splits.test), "B": accuracy(teacher_b.module, splits.test)}
    n_teacher = sum(p.numel() for p in teacher_a.module.parameters())
    def run_row(label: str, which: str, changes: dict) -> dict:
        accs, vals, params, secs = [], [], None, []
        for seed in seeds:
            cfg = DistillConfig(ratio=0.25, epochs=a.epochs, seed=seed, cache_dir=str(work / "cache"),
                                checkpoint_dir=str(work / "runs" / f"{label}-{seed}"), **changes)
            teacher, sp = (teacher_b if which == "B" else teacher_a), (half if which == "A-half" else splits)
            if which == "AB":
                cfg = cfg.replace(teachers=(str(b_file),))
            out = distill(teacher, sp, cfg, trust_model=True, console=quiet)
            accs.append(accuracy(out.student, splits.test))
            vals.append(out.stages[-1]["val_score"])
            params = out.stages[-1]["parameters"]
            secs.append(out.stages[-1]["seconds_per_epoch"])
            print(f"  {label} seed {seed}: val {100 * vals[-1]:.2f}%, test {100 * accs[-1]:.2f}%", file=sys.stderr)
        return {"label": label, "teacher": which, "accuracies": accs, "val": vals, "parameters": params,
                "seconds_per_epoch": statistics.mean(secs)}

    # the KD temperature is chosen on the validation split (mean over seeds), never on the test split
    temps = [float(t) for t in a.temperatures.split(",")]
    by_t = {t: run_row(f"KD (T={t:g})", "A", {"methods": ("kd",), "temperature": t}) for t in temps}
    best_t = max(temps, key=lambda t: statistics.mean(by_t[t]["val"]))
    selection = {f"{t:g}": statistics.mean(r["val"]) for t, r in by_t.items()}
    print(f"KD temperature by validation accuracy: {selection} -> T={best_t:g}", file=sys.stderr)
    chosen = rows(best_t)
    if a.only:
        chosen = [chosen[int(i) - 1] for i in a.only.split(",")]
    for label, which, changes in chosen:
        if label == "KD":
            results.append({**by_t[best_t], "label": f"KD (T={best_t:g}, chosen on val)"})
        else:
            results.append(run_row(label, which, changes))
    timing = _cache_timing(teacher_a, splits, a.epochs, work)
    _print(results, t_acc, n_teacher, seeds, a.epochs, timing)
    print(f"KD temperature chosen on the validation split: mean val accuracy {selection} -> T={best_t:g}")
    if a.json:
        Path(a.json).write_text(json.dumps({"teachers": t_acc, "rows": results, "timing": timing,
                                            "temperature_selection": selection}, indent=1))
    return 0


def _cache_timing(teacher, splits, epochs: int, work: Path) -> dict[str, float]:
    """Seconds per epoch of KD with the teacher-output cache, and with the teacher run online."""
    from rich.console import Console

    from compressor.distill.config import DistillConfig
    from compressor.distill.engine import distill

    out = {}
    for name, cache in (("cached", True), ("online", False)):
        cfg = DistillConfig(ratio=0.25, epochs=min(epochs, 10), cache=cache, cache_dir=str(work / "cache"),
                            checkpoint_dir=str(work / "runs" / f"timing-{name}"))
        o = distill(teacher, splits, cfg, console=Console(stderr=True, quiet=True))
        out[name] = o.stages[-1]["seconds_per_epoch"]
    return out


def _print(results, t_acc, n_teacher, seeds, epochs, timing) -> None:
    def ms(xs):
        m = statistics.mean(xs)
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{100 * m:6.2f} ± {100 * sd:4.2f}"

    print(f"\nDistillation on digits: test accuracy (%), mean ± std over seeds {seeds}, {epochs} epochs, "
          "students = teacher channel-pruned to <= 25% of its parameters\n")
    print(f"| {'model':42} | {'params':>7} | {'test acc %':>14} | {'val acc %':>14} | {'kept of A':>9} | "
          f"{'s/epoch':>7} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 16}|{'-' * 16}|{'-' * 11}|{'-' * 9}|")
    for name, key in (("teacher A (demo)", "A"), ("teacher B (same recipe, seed 1)", "B")):
        print(f"| {name:42} | {n_teacher:7,} | {100 * t_acc[key]:6.2f}         | {'':14} | "
              f"{100 * t_acc[key] / t_acc['A']:8.1f}% | {'':7} |")
    for r in results:
        kept = statistics.mean(r["accuracies"]) / t_acc["A"]
        print(f"| {r['label']:42} | {r['parameters']:7,} | {ms(r['accuracies']):>14} | {ms(r['val']):>14} | "
              f"{100 * kept:8.1f}% | {r['seconds_per_epoch']:7.3f} |")
    print(f"\nwall time per epoch (KD, 1 thread): teacher-output cache {timing['cached']:.3f} s, "
          f"teacher online {timing['online']:.3f} s ({timing['online'] / timing['cached']:.2f}x)")


if __name__ == "__main__":
    sys.exit(main())
