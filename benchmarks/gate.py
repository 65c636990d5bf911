"""The CI gate: compare a run with a saved baseline (or A against B, interleaved) and decide.

Latency: fails only when the slowdown is both larger than the threshold and significant
(stats.slower_than: one-sided Mann-Whitney U against baseline x (1 + threshold), alpha 0.01, on
per-process medians when each side has >= 5 fresh processes: --repeats, or --ab rounds).
Size: fails when an artifact grew by more than --fail-larger (sizes are exact, no test needed).
Accuracy: fails when an artifact lost more than --max-accuracy-drop points against the baseline,
or, without a baseline, against the PyTorch model it was exported from.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from compressor.core.errors import CompressError
from compressor.core.parity import accuracy_drop_points

from . import stats


@dataclass(frozen=True)
class Budget:
    fail_slower: float | None = None  # relative, 0.10 = 10 %
    fail_larger: float | None = None
    max_accuracy_drop: float | None = None  # percentage points
    alpha: float = stats.DEFAULT_ALPHA

    def __post_init__(self) -> None:
        for name in ("fail_slower", "fail_larger"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise CompressError(f"--{name.replace('_', '-')} must be >= 0%")
        if not 0 < self.alpha < 1:
            raise CompressError("--alpha must be between 0 and 1")


@dataclass
class GateResult:
    latency: list[dict[str, Any]] = field(default_factory=list)
    size: list[dict[str, Any]] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # counted in the baseline, failing or not counted now

    @property
    def failed(self) -> bool:
        return bool(self.broken) or any(r.get("failed") for r in self.latency + self.size + self.accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {"failed": self.failed, "latency": self.latency, "size": self.size, "accuracy": self.accuracy,
                "notes": self.notes, "broken": self.broken}


def parse_percent(text: str, flag: str) -> float:
    """'10%' or '10' -> 0.10."""
    try:
        v = float(str(text).strip().rstrip("%"))
    except ValueError:
        raise CompressError(f"{flag} expects a percentage like 10%, got {text!r}") from None
    if v < 0:
        raise CompressError(f"{flag} must be >= 0%")
    return v / 100.0


def save(result: dict[str, Any], path: Path) -> None:
    Path(path).write_text(json.dumps(result, indent=1, default=str) + "\n")


def load(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CompressError(f"cannot read baseline {path} ({e}); make one with `compress bench ... --save`") from e
    if d.get("kind") != "edge-compress bench":
        raise CompressError(f"{path} is not a bench result; make one with `compress bench ... --save`")
    return d


def _counted(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["artifact"], r["setting"]): r for r in result["rows"] if r.get("counted") and r.get("samples_ms")}


def latency_row(key: tuple[str, str], base: dict[str, Any], cur: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """base/cur: {"samples_ms": [...], "process_medians_ms": [...] (one per fresh process)}."""
    t = budget.fail_slower if budget.fail_slower is not None else 0.0
    b, b_proc = stats.gate_observations(base["samples_ms"], base.get("process_medians_ms"))
    c, c_proc = stats.gate_observations(cur["samples_ms"], cur.get("process_medians_ms"))
    if b_proc != c_proc:  # compare like with like
        b, c = base["samples_ms"], cur["samples_ms"]
    v = stats.slower_than(b, c, t, alpha=budget.alpha, per_process=b_proc and c_proc)
    return {"artifact": key[0], "setting": key[1], "baseline_ms": float(np.median(base["samples_ms"])),
            "current_ms": float(np.median(cur["samples_ms"])), "observations": [len(b), len(c)], **v.to_dict(),
            "failed": v.failed and budget.fail_slower is not None}


def compare(baseline: dict[str, Any], current: dict[str, Any], budget: Budget) -> GateResult:
    g = GateResult()
    b_rows, c_rows = _counted(baseline), _counted(current)
    for key in c_rows:
        if key in b_rows:
            g.latency.append(latency_row(key, b_rows[key], c_rows[key], budget))
        else:
            g.notes.append(f"{key[0]} on {key[1]}: not in the baseline (not gated)")
    ran = {(r["artifact"], r["setting"]) for r in current["rows"]}
    for key in sorted((b_rows.keys() - c_rows.keys()) & ran):  # settings left out on purpose are not news
        r = next(r for r in current["rows"] if (r["artifact"], r["setting"]) == key)
        why = r.get("error") or ("parity failed" if r.get("parity") else "no parity")
        g.broken.append(f"{key[0]} on {key[1]}: ran in the baseline, now {why}")
    b_art = {a["name"]: a for a in baseline["artifacts"]}
    for a in current["artifacts"]:
        b = b_art.get(a["name"])
        if b is None:
            continue
        ratio = a["size_bytes"] / max(1, b["size_bytes"])
        g.size.append({"artifact": a["name"], "baseline_bytes": b["size_bytes"], "current_bytes": a["size_bytes"],
                       "ratio": ratio, "threshold": budget.fail_larger,
                       "failed": budget.fail_larger is not None and ratio > 1 + budget.fail_larger})
        if a.get("accuracy") is not None and b.get("accuracy") is not None:
            g.accuracy.append(_acc_row(a["name"], "baseline", b["accuracy"], a["accuracy"], budget))
    return g


def _acc_row(name: str, against: str, ref: float, acc: float, budget: Budget) -> dict[str, Any]:
    drop = accuracy_drop_points(ref, acc)
    return {"artifact": name, "against": against, "reference": ref, "accuracy": acc, "drop_points": drop,
            "budget_points": budget.max_accuracy_drop,
            "failed": budget.max_accuracy_drop is not None and drop > budget.max_accuracy_drop}


def accuracy_vs_export(current: dict[str, Any], budget: Budget) -> GateResult:
    """Without a baseline: each artifact's accuracy against the PyTorch model's on the same held-out inputs."""
    g = GateResult()
    for a in current["artifacts"]:
        p = a.get("export_parity") or {}
        if p.get("accuracy") is not None and p.get("reference_accuracy") is not None:
            g.accuracy.append(_acc_row(a["name"], "pytorch", p["reference_accuracy"], p["accuracy"], budget))
    return g


def print_gate(g: GateResult, console: Console, title: str = "latency: current vs baseline",
               sides: tuple[str, str] = ("baseline", "current")) -> None:
    if g.latency:
        tests = sorted({r["test"] for r in g.latency})
        t = Table(title=f"{title} (gate: {'; '.join(tests)})")
        for c in ("artifact", "setting", f"{sides[0]} ms", f"{sides[1]} ms", "ratio", "95% CI", "p", "verdict"):
            t.add_column(c, justify="left" if c in ("artifact", "setting") else "right")
        for r in g.latency:
            t.add_row(r["artifact"], r["setting"], f"{r['baseline_ms']:.4g}", f"{r['current_ms']:.4g}",
                      f"{r['ratio']:.3f}", f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]", f"{r['p_value']:.2g}",
                      _verdict(r, f"> +{100 * r['threshold']:.0f}%"))
        console.print(t)
    if g.size:
        t = Table(title="size")
        for c in ("artifact", "baseline", "current", "ratio", "verdict"):
            t.add_column(c, justify="left" if c == "artifact" else "right")
        for r in g.size:
            t.add_row(r["artifact"], str(r["baseline_bytes"]), str(r["current_bytes"]), f"{r['ratio']:.3f}",
                      _verdict(r, "larger"))
        console.print(t)
    if g.accuracy:
        t = Table(title="accuracy")
        for c in ("artifact", "against", "reference", "accuracy", "drop (points)", "verdict"):
            t.add_column(c, justify="left" if c in ("artifact", "against") else "right")
        for r in g.accuracy:
            t.add_row(r["artifact"], r["against"], f"{100 * r['reference']:.2f}%", f"{100 * r['accuracy']:.2f}%",
                      f"{r['drop_points']:.2f}", _verdict(r, "over budget"))
        console.print(t)
    for n in g.notes:
        console.print(f"note: {n}")
    for n in g.broken:
        console.print(f"[red]FAIL[/]: {n}")
    console.print("[red]gate FAILED[/]" if g.failed else "[green]gate passed[/]")


def _verdict(r: dict[str, Any], what: str) -> str:
    return f"[red]FAIL ({what})[/]" if r["failed"] else "[green]ok[/]"
