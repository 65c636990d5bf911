"""The CI gate: compare a run with a saved baseline (or A against B, interleaved) and decide.

Latency: a 1-thread row fails when its best process (per-process lower quartiles, each side >= 5 fresh
processes: --repeats, default 6, or --ab rounds) is slower than the baseline's best by more than the
threshold (stats.slower_than says why the best). All-core rows (unless --gate-all-cores) and rows with
fewer processes on a side show their ratio and why they are not gated, and never fail.
Size: fails when an artifact grew by more than --fail-larger (sizes are exact, no test needed).
Accuracy: fails when an artifact lost more than --max-accuracy-drop points against the baseline,
or, without a baseline, against the PyTorch model it was exported from.
Unmeasured: a row counted in the baseline that this run should have measured (its setting ran) but
did not, or measured with NaN/Inf samples, fails: a gate cannot pass on what it did not see.
Machine: a baseline from another CPU model, architecture or core count is a loud warning (or, with
--fail-other-machine, refused before any timing); a baseline of another schema is refused.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from compressor.core.checks import check_number
from compressor.core.errors import CompressError
from compressor.core.parity import accuracy_drop_points

from . import stats

SCHEMA = 1  # bench.json's layout; a baseline of another schema is refused, never half-read
MACHINE_KEYS = (("model", "CPU model"), ("arch", "architecture"), ("logical_cores", "logical cores"),
                ("usable_cores", "usable cores"))


@dataclass(frozen=True)
class Budget:
    fail_slower: float | None = None  # relative, 0.10 = 10 %
    fail_larger: float | None = None
    max_accuracy_drop: float | None = None  # percentage points
    all_cores: bool = False  # gate all-core rows too (a dedicated machine); 1-thread rows are always gated

    def __post_init__(self) -> None:
        # NaN passes `v < 0` and would disable a budget without a word
        for name in ("fail_slower", "fail_larger", "max_accuracy_drop"):
            v = getattr(self, name)
            if v is not None:
                check_number(f"--{name.replace('_', '-')}", v, 0,
                             hint="percentage points" if name == "max_accuracy_drop" else "a fraction: 0.1 = 10%")


@dataclass
class GateResult:
    latency: list[dict[str, Any]] = field(default_factory=list)
    size: list[dict[str, Any]] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # counted in the baseline, not measured now (missing, error, parity, NaN): each one fails the gate
    unmeasured: list[dict[str, Any]] = field(default_factory=list)
    machine: list[str] = field(default_factory=list)  # how this machine differs from the baseline's

    @property
    def broken(self) -> list[str]:
        return [r["why"] for r in self.unmeasured]

    @property
    def failed(self) -> bool:
        return bool(self.unmeasured) or any(r.get("failed") for r in self.latency + self.size + self.accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {"failed": self.failed, "latency": self.latency, "size": self.size, "accuracy": self.accuracy,
                "notes": self.notes, "broken": self.broken, "unmeasured": self.unmeasured,
                "other_machine": self.machine}


def parse_percent(text: str, flag: str) -> float:
    """'10%' or '10' -> 0.10."""
    try:
        v = float(str(text).strip().rstrip("%"))
    except ValueError:
        raise CompressError(f"{flag} expects a percentage like 10%, got {text!r}") from None
    if not math.isfinite(v) or v < 0:  # "nan%" would switch the budget off
        raise CompressError(f"{flag} {text} must be a finite percentage >= 0%, like 10%")
    return v / 100.0


def save(result: dict[str, Any], path: Path) -> None:
    Path(path).write_text(json.dumps(result, indent=1, default=str) + "\n")


def load(path: Path) -> dict[str, Any]:
    """A baseline written by `compress bench --save`, checked enough that comparing it cannot crash."""
    make = "make one with `compress bench ... --save`"
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise CompressError(f"cannot read baseline {path} ({first}); {make}") from None
    except RecursionError:  # [[[[...]]]] nested past the parser's stack
        raise CompressError(f"baseline {path} is nested too deeply to be a bench result; {make}") from None
    if not isinstance(d, dict):
        raise CompressError(f"baseline {path} is a JSON {type(d).__name__}, not a bench result; {make}")
    if d.get("kind") != "edge-compress bench":
        raise CompressError(f"baseline {path} is not a bench result; {make}")
    if d.get("schema") != SCHEMA:
        raise CompressError(f"baseline {path} has bench.json schema {d.get('schema')!r}, this version reads "
                            f"schema {SCHEMA}; record the baseline again with this version (--save)")
    rows, arts = d.get("rows"), d.get("artifacts")
    if not isinstance(rows, list) or not isinstance(arts, list) or \
            not all(isinstance(r, dict) and isinstance(r.get("artifact"), str) and isinstance(r.get("setting"), str)
                    for r in rows) or \
            not all(isinstance(a, dict) and isinstance(a.get("name"), str) and _finite(a.get("size_bytes"))
                    and (a.get("accuracy") is None or _finite(a["accuracy"])) for a in arts):
        raise CompressError(f"baseline {path} has damaged rows or artifacts; {make}")
    return d


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def finite_samples(row: dict[str, Any]) -> bool:
    """Whether a row's timings can be compared: samples (and per-process medians) present and all finite."""
    samples, medians, p25 = row.get("samples_ms"), row.get("process_medians_ms"), row.get("process_p25_ms")
    if not isinstance(samples, list) or not samples or not all(isinstance(m, (list, type(None))) for m in (medians, p25)):
        return False
    return all(_finite(v) for v in samples + (medians or []) + (p25 or []))


def machine_differences(baseline: dict[str, Any] | None, current: dict[str, Any] | None) -> list[str]:
    """How the current machine's CPU differs from the baseline's (bench.json `machine` sections)."""
    b_cpu, c_cpu = (baseline or {}).get("cpu"), (current or {}).get("cpu")
    if not isinstance(c_cpu, dict):
        return []  # nothing to compare with (a hand-made current document)
    if not isinstance(b_cpu, dict):
        return ["the baseline does not say which machine it was measured on"]
    return [f"{label}: {b_cpu.get(k)!r} in the baseline, {c_cpu.get(k)!r} now" for k, label in MACHINE_KEYS
            if b_cpu.get(k) != c_cpu.get(k)]


def _counted(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["artifact"], r["setting"]): r for r in result["rows"] if r.get("counted")}


def latency_row(key: tuple[str, str], base: dict[str, Any], cur: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """base/cur: {"samples_ms": [...], "process_p25_ms": [...], "process_medians_ms": [...], "threads": n}.

    baseline_ms/current_ms are each side's best process (the gate's figures); median_ms keeps the rows'
    medians.
    """
    t = budget.fail_slower if budget.fail_slower is not None else 0.0
    b, c, test = stats.gate_observations(base, cur)
    if stats.gated(test) and cur.get("threads") != 1 and not budget.all_cores:
        test = stats.TEST_ALL_CORES
    v = stats.slower_than(b, c, t, test=test)
    return {"artifact": key[0], "setting": key[1], "baseline_ms": float(np.min(b)),
            "current_ms": float(np.min(c)), "observations": [len(b), len(c)],
            "median_ms": [float(np.median(base["samples_ms"])), float(np.median(cur["samples_ms"]))],
            "processes": [_processes(base), _processes(cur)], "gated": stats.gated(test),
            **v.to_dict(), "failed": v.failed and budget.fail_slower is not None}


def _processes(row: dict[str, Any]) -> int:
    return len(row.get("process_p25_ms") or row.get("process_medians_ms") or [0])  # [0]: one process, no list


def compare(baseline: dict[str, Any], current: dict[str, Any], budget: Budget) -> GateResult:
    g = GateResult(machine=machine_differences(baseline.get("machine"), current.get("machine")))
    b_rows, c_rows = _counted(baseline), _counted(current)
    for key, c in c_rows.items():
        b = b_rows.get(key)
        if b is None:
            g.notes.append(f"{key[0]} on {key[1]}: not in the baseline (not gated)")
        elif not finite_samples(b):
            _unmeasured(g, key, b, c, "NaN in baseline", "the baseline's samples are missing, NaN or Inf "
                        "(record it again)")
        elif not finite_samples(c):
            _unmeasured(g, key, b, c, "NaN samples", "its samples are missing, NaN or Inf")
        else:
            g.latency.append(latency_row(key, b, c, budget))
    now = {(r["artifact"], r["setting"]): r for r in current["rows"]}
    # the settings this run measured (--targets, --only); older documents without the list: those in its rows
    scope = set(current.get("settings") or {k[1] for k in now})
    for key in sorted(b_rows.keys() - c_rows.keys()):
        r = now.get(key)
        if r is not None:
            why = r.get("error") or ("parity failed" if r.get("parity") else "no parity")
            _unmeasured(g, key, b_rows[key], None, "error" if r.get("error") else "parity", why)
        elif key[1] in scope:
            _unmeasured(g, key, b_rows[key], None, "missing", "missing from this run (artifact gone or renamed?)")
        else:  # a setting left out on purpose (--only, --targets) is not news
            g.notes.append(f"{key[0]} on {key[1]}: setting not measured in this run (not gated)")
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


def _unmeasured(g: GateResult, key: tuple[str, str], base: dict[str, Any], cur: dict[str, Any] | None,
                verdict: str, why: str) -> None:
    g.unmeasured.append({"artifact": key[0], "setting": key[1], "baseline_ms": _median(base),
                         "current_ms": _median(cur), "verdict": verdict, "failed": True,
                         "why": f"{key[0]} on {key[1]}: counted in the baseline, now {why}"})


def _median(row: dict[str, Any] | None) -> float | None:
    if row is None or not finite_samples(row):
        return None
    return float(np.median(row["samples_ms"]))


def _acc_row(name: str, against: str, ref: float, acc: float, budget: Budget) -> dict[str, Any]:
    drop = accuracy_drop_points(ref, acc)
    return {"artifact": name, "against": against, "reference": ref, "accuracy": acc, "drop_points": drop,
            "budget_points": budget.max_accuracy_drop,
            # `not drop <= budget`: a NaN accuracy fails the budget instead of slipping past `>`
            "failed": budget.max_accuracy_drop is not None and not drop <= budget.max_accuracy_drop}


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
    if g.machine:
        console.print(f"[bold red]WARNING: the baseline was measured on another machine[/] ({'; '.join(g.machine)}):"
                      " latency ratios compare two machines, not two versions; record the baseline on this "
                      "machine type (--fail-other-machine refuses such a baseline)")
    if g.latency or g.unmeasured:
        tests = sorted({r["test"] for r in g.latency})
        other = " [bold red]ANOTHER MACHINE[/]" if g.machine else ""
        t = Table(title=f"{title} (gate: {'; '.join(tests) or '-'}){other}")
        for c in ("artifact", "setting", f"{sides[0]} ms", f"{sides[1]} ms", "ratio", "median ratio [95% CI]",
                  "verdict"):
            t.add_column(c, justify="left" if c in ("artifact", "setting") else "right")
        for r in g.latency:
            verdict = _verdict(r, f"> +{100 * r['threshold']:.0f}%") if r.get("gated", True) else \
                f"[yellow]{r['test']}[/]"
            t.add_row(r["artifact"], r["setting"], f"{r['baseline_ms']:.4g}", f"{r['current_ms']:.4g}",
                      f"{r['ratio']:.3f}", f"{r['median_ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]", verdict)
        for r in g.unmeasured:
            t.add_row(r["artifact"], r["setting"], _ms(r["baseline_ms"]), _ms(r["current_ms"]), "-", "-",
                      f"[red]FAIL ({r['verdict']})[/]")
        console.print(t)
        if any(r["test"] != stats.TEST_SAMPLES for r in g.latency):
            console.print("ms: each side's best fresh process (its lower quartile); a neighbour only adds time, so "
                          "the least disturbed process is the one that measures the model")
        if any(r["test"] == stats.TEST_SAMPLES for r in g.latency):
            console.print(f"[yellow]note[/]: rows with fewer than {stats.MIN_PROCESSES} fresh processes on a side "
                          f"are not gated: {stats.NOT_GATED_WHY}")
        if any(r["test"] == stats.TEST_ALL_CORES for r in g.latency):
            console.print(f"[yellow]note[/]: all-core rows are not gated: {stats.ALL_CORES_WHY}")
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
    verdict = "[red]gate FAILED[/]" if g.failed else "[green]gate passed[/]"
    console.print(verdict + (" [bold red](baseline from another machine)[/]" if g.machine else ""))


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _verdict(r: dict[str, Any], what: str) -> str:
    return f"[red]FAIL ({what})[/]" if r["failed"] else "[green]ok[/]"
