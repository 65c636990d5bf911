"""Pool the seeds of several studies.distill_quality runs into one paired test per comparison.

    .venv/bin/python -m studies.distill_pool run-seeds-0-2.json run-seeds-3-7.json

Runs with other seeds but the same folds and teachers (the teachers' seeds are fixed) test the same
images; stacking their students' per-image correctness gives more seeds per image, so the paired
tests over images resolve smaller differences than any one run. Refuses files whose teachers differ.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .distill_quality import paired_test


def pool(figures: list[dict]) -> dict[str, np.ndarray]:
    """Arm -> (all runs' seeds, images) correctness; teachers once. ValueError if the runs' teachers differ."""
    first = figures[0]["correct"]
    for f in figures[1:]:
        for arm in (a for a in first if a.startswith("teacher ")):
            if f["correct"].get(arm) != first[arm]:
                raise ValueError(f"{arm} differs between the runs: pool only runs with the same folds and teachers")
    arms = set.intersection(*(set(f["correct"]) for f in figures))
    return {arm: np.concatenate([np.asarray(f["correct"][arm], bool) for f in figures])
            if not arm.startswith("teacher ") else np.asarray(first[arm], bool) for arm in sorted(arms)}


def comparisons(c: dict[str, np.ndarray], settings: list[str], methods_setting: str) -> list[tuple[str, dict]]:
    """(label, paired test + accuracies) for KD vs labels per setting, and each ensemble vs each single teacher."""
    out = []
    teacher = c["teacher A"].mean()
    for s in settings:
        kd, lab = c[f"{s} | KD"], c[f"{s} | labels"]
        out.append((f"{s}: KD vs labels", {**paired_test(kd, lab), "a": kd.mean(), "b": lab.mean(),
                                            "kept": kd.mean() / teacher, "seeds": len(kd)}))
    singles = {"teacher A": f"{methods_setting} | KD", "teacher B": "KD, teacher B alone"}
    from .distill_runs import ensemble_labels

    for e in (e for e in ensemble_labels() if e in c):
        for name, arm in singles.items():
            a, b = c[e], c[arm]
            if len(a) != len(b):
                raise ValueError("the method rows ran on other seeds than the settings (--extra-seeds): "
                                 "pool runs made with --extra-seeds equal to --seeds")
            out.append((f"{e} vs KD from {name} alone", {**paired_test(a, b), "a": a.mean(), "b": b.mean(),
                                                         "seeds": len(a)}))
    return out


def main(argv: list[str] | None = None) -> int:
    files = argv if argv is not None else sys.argv[1:]
    if len(files) < 2:
        raise SystemExit("usage: python -m studies.distill_pool RUN.json RUN.json [...] (distill_quality --json)")
    figures = [json.loads(Path(f).read_text()) for f in files]
    settings = [s["key"] for s in figures[0]["settings"]]
    methods_setting = next(s["key"] for s in figures[0]["settings"] if s["label_fraction"] < 1)
    try:
        c = pool(figures)
        rows = comparisons(c, settings, methods_setting)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"pooled {len(files)} runs; teacher A {100 * c['teacher A'].mean():.2f}%\n")
    for label, r in rows:
        kept = f", kept {100 * r['kept']:.1f}%" if "kept" in r else ""
        print(f"{label}: {100 * r['a']:.2f}% vs {100 * r['b']:.2f}% ({r['seeds']} seeds{kept}): "
              f"{100 * r['diff']:+.2f} [{100 * r['lo']:+.2f}, {100 * r['hi']:+.2f}] points, p = {r['p']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
