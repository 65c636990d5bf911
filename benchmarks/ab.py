"""A/B mode: two artifacts (or two output folders from two commits) measured interleaved in one run.

Rounds alternate A B, B A, A B ... each measurement in a fresh process or page; samples are
pooled per side, and each process's lower quartile and median are kept: with >= 5 rounds the gate
compares each side's best process (the process, not the sample, is the independent unit; stats.py
says why the best). On a shared machine the absolute times drift with the neighbours' load, but
both sides see the same drift, so the ratio B/A measured this way is stable where comparing
against yesterday's baseline is not. The gate then applies stats.slower_than to B against A (1-thread rows; --gate-all-cores for the rest).
"""
from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from compressor.core.errors import CompressError

from . import stats
from .bench import BenchOptions, _Browsers, measure_one, merge, plan
from .discover import Item, discover
from .gate import Budget, GateResult, latency_row


def pair(a_paths: list[Path], b_paths: list[Path]) -> list[tuple[Item, Item]]:
    """Match A's and B's artifacts: by manifest name for two folders, one to one for two files."""
    a_items, _ = discover(a_paths)
    b_items, _ = discover(b_paths)
    if len(a_items) == 1 and len(b_items) == 1:
        if a_items[0].format != b_items[0].format:
            raise CompressError(f"--ab needs two artifacts of one format, got {a_items[0].format} and "
                                f"{b_items[0].format}")
        return [(a_items[0], b_items[0])]
    b_by = {it.name: it for it in b_items}
    pairs = [(a, b_by[a.name]) for a in a_items if a.name in b_by]
    if not pairs:
        raise CompressError("--ab: A and B have no artifact in common (matched by manifest name)")
    return pairs


def run(pairs: list[tuple[Item, Item]], opts: BenchOptions, budget: Budget, *, rounds: int = 5,
        console: Console | None = None) -> tuple[dict[str, Any], GateResult]:
    if rounds < 2:
        raise CompressError("--rounds must be at least 2 for an interleaved A/B run")
    console = console or Console(stderr=True)
    settings = opts.settings()
    todo = plan([a for a, _ in pairs], settings)
    if not todo:
        raise CompressError(f"--ab: no target in {','.join(opts.targets)} runs {pairs[0][0].format} artifacts")
    measured: dict[tuple[str, str, str], list[dict[str, Any]]] = {}  # (side, artifact, setting): one per process
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="compress-ab-") as tmp, _Browsers(todo) as browsers:
        for r in range(rounds):
            for setting, a in todo:
                b = next(b for aa, b in pairs if aa is a)
                order = (("A", a), ("B", b)) if r % 2 == 0 else (("B", b), ("A", a))
                for side, it in order:
                    with console.status(f"round {r + 1}/{rounds}: {side} {it.name} on {setting.name} ..."):
                        res = measure_one(setting, it, opts, browsers, Path(tmp), None, throughput=False)
                    if "error" in res:
                        errors.append(f"{side} {it.name} on {setting.name}: {res['error']}")
                        continue
                    measured.setdefault((side, a.name, setting.name), []).append(res)
    if not measured:
        raise CompressError(f"--ab: no measurement succeeded ({errors[0] if errors else 'nothing ran'})")
    g = GateResult(notes=errors)
    rows = []
    for setting, a in todo:
        if ("A", a.name, setting.name) not in measured or ("B", a.name, setting.name) not in measured:
            continue
        # pooled samples, per-process medians and lower quartiles, as a row of `compress bench` gets them
        ma, mb = (merge(measured[(side, a.name, setting.name)]) for side in ("A", "B"))
        keys = ("samples_ms", "process_medians_ms", "process_p25_ms")
        sides = [{**{k: m[k] for k in keys}, "threads": setting.threads} for m in (ma, mb)]
        g.latency.append(latency_row((a.name, setting.name), *sides, budget))
        rows.append({"artifact": a.name, "setting": setting.name, "A_ms": stats.summarize(ma["samples_ms"]),
                     "B_ms": stats.summarize(mb["samples_ms"]),
                     **{f"{side}_{k}": m[k] for side, m in (("A", ma), ("B", mb)) for k in keys}})
    doc = {"schema": 1, "kind": "edge-compress ab", "rounds": rounds,
           "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "bounds": asdict(opts.bounds), "pairs": [[str(a.path), str(b.path)] for a, b in pairs],
           "rows": rows, "gate": g.to_dict()}
    return doc, g
