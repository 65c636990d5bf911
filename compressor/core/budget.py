"""Accuracy budget with automatic fallbacks, independent of the target format.

`search` takes two callables, `make(settings) -> artifact` and `evaluate(artifact) -> Measure`,
so the same logic serves ONNX Runtime static int8 here and the TFLite int8 converter.
When the first settings break the budget it tries, in order: more calibration samples,
another calibration method, per-channel / reduce-range / scheme settings, and keeping the
most sensitive layers in float. It returns the first settings that meet the budget, with
the table of every trial, or raises CompressError with that table.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import BudgetError, CompressError
from .parity import accuracy_drop_points


@dataclass(frozen=True)
class Settings:
    """What the fallbacks may change. Formats ignore the fields they have no use for."""

    calib_samples: int
    calib_method: str = "minmax"
    per_channel: bool = True
    scheme: str = "u8s8"
    reduce_range: bool = False
    float_layers: tuple[str, ...] = ()  # layers (ONNX node names, ...) kept in float

    def label(self) -> str:
        s = (f"{self.calib_method}, {self.calib_samples} samples, "
             f"{'per-channel' if self.per_channel else 'per-tensor'}, {self.scheme}"
             f"{', reduce_range' if self.reduce_range else ''}")
        return s + (f", {len(self.float_layers)} layer(s) in float" if self.float_layers else "")


@dataclass(frozen=True)
class AccuracyBudget:
    max_accuracy_drop: float | None = 1.0  # percentage points; None: accuracy not judged
    min_agreement: float = 0.99


@dataclass(frozen=True)
class Measure:
    """An artifact on the held-out split: accuracy (None when unlabelled) and top-1 agreement with float."""

    accuracy: float | None
    agreement: float


@dataclass
class Trial:
    step: str
    settings: Settings
    accuracy: float | None = None
    drop_points: float | None = None
    agreement: float | None = None
    ok: bool = False
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["settings"] = {**dataclasses.asdict(self.settings), "float_layers": list(self.settings.float_layers)}
        return d


def judge(m: Measure, reference_accuracy: float | None, budget: AccuracyBudget) -> tuple[float | None, bool]:
    """(accuracy drop in points, within budget?) for a measure against the float model."""
    drop = accuracy_drop_points(reference_accuracy, m.accuracy)
    ok = m.agreement >= budget.min_agreement
    if budget.max_accuracy_drop is not None and drop is not None:
        ok = ok and drop <= budget.max_accuracy_drop + 1e-9
    return drop, ok


Stage = tuple[str, Callable[[Settings], Sequence[Settings]]]


def default_stages(*, max_calib: int, methods: Sequence[str] = (),
                   schemes: Sequence[tuple[str, bool]] = (("u8s8", True), ("u8u8", False), ("s8s8", False)),
                   sensitivity: Callable[[Settings], list[str]] | None = None,
                   max_float_layers: int = 3, per_channel_toggle: bool = True) -> list[Stage]:
    """The fallbacks in the issue's order; each maps the best settings so far to candidates.

    A format passes only what its converter can change: methods=() and schemes=() and
    per_channel_toggle=False leave those stages without candidates (they are skipped).
    """

    def more_samples(s: Settings) -> list[Settings]:
        out, n = [], s.calib_samples
        while n < max_calib:
            n = min(max_calib, n * 4)
            out.append(dataclasses.replace(s, calib_samples=n))
        return out

    def other_method(s: Settings) -> list[Settings]:
        return [dataclasses.replace(s, calib_method=m) for m in methods if m != s.calib_method]

    def channel_and_range(s: Settings) -> list[Settings]:
        cands = [dataclasses.replace(s, per_channel=not s.per_channel)] if per_channel_toggle else []
        cands += [dataclasses.replace(s, scheme=sc, reduce_range=rr) for sc, rr in schemes
                  if (sc, rr) != (s.scheme, s.reduce_range)]
        return cands

    def float_layers(s: Settings) -> list[Settings]:
        if sensitivity is None or max_float_layers == 0:
            return []
        ranked = [n for n in sensitivity(s) if n not in s.float_layers]
        return [dataclasses.replace(s, float_layers=s.float_layers + tuple(ranked[:k]))
                for k in range(1, min(max_float_layers, len(ranked)) + 1)]

    return [("more calibration samples", more_samples), ("another calibration method", other_method),
            ("per-channel / reduce-range / scheme", channel_and_range),
            ("sensitive layers in float", float_layers)]


@dataclass
class Outcome:
    artifact: Any
    chosen: Trial
    trials: list[Trial]

    @property
    def fell_back(self) -> bool:
        return self.chosen is not self.trials[0]


def _rank(t: Trial) -> tuple:
    # best = smallest accuracy drop, then highest agreement; failed builds last
    if t.error is not None:
        return (1, 0.0, 0.0)
    return (0, max(t.drop_points or 0.0, 0.0), -(t.agreement or 0.0))


def search(initial: Settings, make: Callable[[Settings], Any], evaluate: Callable[[Any], Measure],
           budget: AccuracyBudget, reference_accuracy: float | None, *, stages: Sequence[Stage] = (),
           log: Callable[[str], None] = lambda _m: None, what: str = "int8",
           skip: str = "skip --quantize") -> Outcome:
    """Try `initial`, then each stage's candidates from the best settings so far, until one fits."""
    trials: list[Trial] = []
    made: dict[int, Any] = {}

    def attempt(step: str, s: Settings) -> Trial:
        t = Trial(step, s)
        t0 = time.perf_counter()
        try:
            art = make(s)
            m = evaluate(art)
            t.accuracy, t.agreement = m.accuracy, m.agreement
            t.drop_points, t.ok = judge(m, reference_accuracy, budget)
            made[id(t)] = art
        except CompressError as e:
            t.error = str(e)
        t.seconds = round(time.perf_counter() - t0, 3)
        trials.append(t)
        log(f"{what} [{step}] {s.label()}: " + (f"failed ({t.error})" if t.error else
            f"accuracy drop {t.drop_points} pt, agreement {t.agreement:.4f} -> {'ok' if t.ok else 'over budget'}"))
        return t

    first = attempt("initial", initial)
    if first.ok:
        return Outcome(made[id(first)], first, trials)
    seen = {initial}
    best = first
    for name, candidates in stages:
        for s in candidates(best.settings):
            if s in seen:
                continue
            seen.add(s)
            t = attempt(name, s)
            if t.ok:
                return Outcome(made[id(t)], t, trials)
            if _rank(t) < _rank(best):
                best = t
    raise BudgetError(f"{what} cannot meet the accuracy budget (drop <= {budget.max_accuracy_drop} points, "
                        f"agreement >= {budget.min_agreement}); tried:\n{table(trials)}\n{advice(trials, budget, skip)}")


def advice(trials: Sequence[Trial], budget: AccuracyBudget, skip: str) -> str:
    """What the user can change, naming only the options that apply: without labels the accuracy is not
    measured, and agreement with the float model is the whole budget."""
    labelled = any(t.accuracy is not None for t in trials)
    fixes = [f"raise --max-accuracy-drop (now {budget.max_accuracy_drop})"] if labelled else []
    fixes += [f"lower --min-agreement (now {budget.min_agreement})", "give more --calib data", skip]
    note = "" if labelled else "the data has no labels, so agreement with the float model is the budget: "
    return note + ", ".join(fixes[:-1]) + ", or " + fixes[-1]


def table(trials: Sequence[Trial]) -> str:
    """A plain-text table of the trials, for errors and logs."""
    rows = [("#", "step", "settings", "accuracy", "drop (pt)", "agreement", "result")]
    for i, t in enumerate(trials, 1):
        rows.append((str(i), t.step, t.settings.label(),
                     "-" if t.accuracy is None else f"{100 * t.accuracy:.2f}%",
                     "-" if t.drop_points is None else f"{t.drop_points:+.2f}",
                     "-" if t.agreement is None else f"{100 * t.agreement:.2f}%",
                     "error: " + t.error if t.error else ("ok" if t.ok else "over budget")))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)
