"""--min-kept: a student is never handed on silently bad (issue 15).

The student must keep at least `min_kept` of the teacher on the validation split (quality.kept: its accuracy over
the teacher's with labels; top-1 agreement, mean IoU, mean cosine or explained variance without). On a miss the
cheap fallbacks are tried, each from the best try so far, at most MAX_TRIES runs in all: more epochs, a lower
learning rate, a larger ratio (a pruned student only), another temperature (class scores only). Every try is
recorded (the manifest's distillation.budget); when none fits, a BudgetError (exit 4) holds their table and one
line of advice, and the pipeline writes nothing.

Judged on validation, the split that picks the best epoch, not on test: choosing among tries by the test score
would make the reported test figures optimistic.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from ..core.errors import BudgetError
from ..data import Splits
from ..loading import LoadedModel
from . import distributed as dd
from . import engine
from .config import DistillConfig, layer_count
from .engine import Outcome
from .trainer import Diverged
from .trainset import distilled_output

MAX_TRIES = 4  # the first run and up to three fallbacks: each is a whole training run
T_METHODS = ("kd", "dkd")  # the methods whose soft targets the temperature shapes

Fallback = tuple[str, Callable[[DistillConfig], DistillConfig | None]]  # None: does not apply to these settings


@dataclass
class Try:
    step: str
    cfg: DistillConfig
    value: float | None = None  # quality.kept of the student; None when it could not be measured
    ok: bool = False
    stopped: str | None = None  # training diverged (one line)
    seconds: float = 0.0

    def settings(self) -> dict[str, Any]:
        c = self.cfg
        return {"epochs": c.epochs, "lr": c.lr, "temperature": c.temperature,
                **({"ratio": c.ratio} if c.student == "auto" else {})}

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, **self.settings(), "kept": self.value, "ok": self.ok, "stopped": self.stopped,
                "seconds": round(self.seconds, 3)}


def _other_temperature(c: DistillConfig) -> DistillConfig:
    # softer targets carry more of the teacher's ranking; a student that cannot follow them learns better sharper
    return c.replace(temperature=c.temperature / 2 if c.temperature > 2 else c.temperature * 2)


def fallbacks(cfg: DistillConfig, kind: str) -> list[Fallback]:
    """The fallbacks that apply to this run, in order (the first MAX_TRIES - 1 of them are tried)."""
    steps: list[Fallback] = [("more epochs", lambda c: c.replace(epochs=c.epochs * 2)),
                             ("lower learning rate", lambda c: c.replace(lr=c.lr / 3))]
    if cfg.student == "auto" and cfg.ratio < 1.0:
        steps.append(("larger ratio", lambda c: c.replace(ratio=min(1.0, c.ratio * 2)) if c.ratio < 1 else None))
    if kind in ("logits", "dense") and any(m in T_METHODS for m in cfg.methods):
        steps.append(("another temperature", _other_temperature))
    return steps[:MAX_TRIES - 1]


def judge(value: float | None, min_kept: float) -> bool:
    if min_kept <= 0:
        return True
    return value is not None and math.isfinite(value) and value >= min_kept - 1e-9


def _rank(t: Try) -> float:
    return t.value if t.value is not None and math.isfinite(t.value) else -math.inf


Run = Callable[[DistillConfig], tuple[Any, float | None, str]]  # cfg -> (outcome, kept, the metric's name)


def search(cfg: DistillConfig, kind: str, run: Run, *, log: Callable[[str], None] = lambda _m: None,
           discard: Callable[[Any], None] = lambda _o: None) -> tuple[Any, list[Try]]:
    """Run `cfg`, then the fallbacks from the best try so far, until the student keeps `cfg.min_kept`.

    `run` trains one student (a Diverged error counts as a try that stopped); `discard` removes a try's
    checkpoints when the search fails. Returns the chosen outcome and every try."""
    tries: list[Try] = []
    outcomes: list[Any] = []
    metric = "kept"

    def attempt(step: str, c: DistillConfig) -> Try:
        nonlocal metric
        t = Try(step, c)
        t0 = time.perf_counter()
        out = None
        try:
            out, t.value, metric = run(c)
        except Diverged as e:
            t.stopped = str(e)
        outcomes.append(out)
        t.seconds = time.perf_counter() - t0
        t.ok = t.stopped is None and judge(t.value, cfg.min_kept)
        tries.append(t)
        log(f"distillation budget [{step}] {_label(t)}: {t.stopped or metric + ' ' + _pct(t.value)} -> "
            + ("ok" if t.ok else f"below --min-kept {cfg.min_kept:g}"))
        return t

    best = attempt("initial", cfg)
    if best.ok:
        return outcomes[0], tries
    for name, change in fallbacks(cfg, kind):
        c = change(best.cfg)
        if c is None or any(_same(c, t.cfg) for t in tries):
            continue
        t = attempt(name, _own_folder(c, len(tries)))
        if t.ok:
            return outcomes[-1], tries
        best = t if _rank(t) > _rank(best) else best
    for out in reversed(outcomes):  # the latest first: the first try's may hold the folder the others are in
        if out is not None:
            discard(out)
    raise BudgetError(f"the student keeps {_pct(best.value)} of the teacher ({metric} on the validation split), "
                      f"below --min-kept {cfg.min_kept:g}; tried:\n{table(tries, metric)}\n{advice(cfg)}")


def _same(a: DistillConfig, b: DistillConfig) -> bool:
    return a.replace(checkpoint_dir=None) == b.replace(checkpoint_dir=None)


def _own_folder(c: DistillConfig, i: int) -> DistillConfig:
    """A fallback's checkpoints apart from the first run's: a given --checkpoint-dir gets a try-N subfolder (the
    default folder is named by the options' hash, which differ already)."""
    if not c.checkpoint_dir:
        return c
    return c.replace(checkpoint_dir=str(c.checkpoint_dir).rstrip("/").rsplit("/try-", 1)[0] + f"/try-{i + 1}")


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.2f}%"


def _label(t: Try) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in t.settings().items())


def advice(cfg: DistillConfig) -> str:
    """One line: what the user can change, naming only the options that apply to this student."""
    k = layer_count(cfg.student)
    bigger = ("a larger --ratio" if cfg.student == "auto" else f"more layers (--student layers:{k + 1})"
              if k is not None else "a larger --student")
    return (f"try {bigger}, more (or unlabelled, --unlabeled) training data, more --epochs, or another --method; "
            f"or accept a weaker student with a lower --min-kept (now {cfg.min_kept:g}; 0 turns the check off)")


def table(tries: list[Try], metric: str) -> str:
    """A plain-text table of the tries, for the error and the log."""
    ratio = any("ratio" in t.settings() for t in tries)
    head = ("#", "step", "epochs", "lr", "T", *(("ratio",) if ratio else ()), metric, "result")
    rows = [head]
    for i, t in enumerate(tries, 1):
        s = t.settings()
        rows.append((str(i), t.step, str(s["epochs"]), f"{s['lr']:g}", f"{s['temperature']:g}",
                     *((f"{s['ratio']:g}",) if ratio else ()), _pct(t.value),
                     "stopped: " + t.stopped.removeprefix("training ") if t.stopped else
                     "ok" if t.ok else "below"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def record(tries: list[Try], cfg: DistillConfig, metric: str) -> dict[str, Any]:
    """The manifest's distillation.budget: the floor, the metric, every try and which one was kept."""
    chosen = next((i for i, t in enumerate(tries) if t.ok), None)
    return {"min_kept": cfg.min_kept, "metric": metric, "chosen": chosen,
            "tries": [t.to_dict() for t in tries]}


def distill(teacher: LoadedModel, splits: Splits, cfg: DistillConfig, *, arch: str | None = None,
            trust_model: bool = False, console: Console | None = None) -> Outcome:
    """compressor.distill.engine.distill within --min-kept: the chosen try's Outcome, its `budget` the record of
    every try; a BudgetError when none keeps enough of the teacher (every try's default checkpoints removed)."""
    console = console or Console(stderr=True)
    if dd.is_worker():
        console = Console(stderr=True, quiet=True)
    outcomes: list[Outcome] = []

    def run(c: DistillConfig) -> tuple[Outcome, float | None, str]:
        out = engine.distill(teacher, splits, c, arch=arch, trust_model=trust_model, console=console)
        outcomes.append(out)
        return out, out.check.get("kept"), out.check.get("kept_metric", "kept")

    kind = distilled_output(teacher, cfg)[2]
    if dd.world() > 1:
        # under torchrun a retry would join the process group again, which hangs: one try, judged on rank 0
        # (the ranks end alike: the student and its figures are the same on every rank), no fallbacks
        out, value, metric = run(cfg)
        out.budget = {"min_kept": cfg.min_kept, "metric": metric, "value": value,
                      "fallbacks": "none under torchrun (a retry would join the process group again)"}
        if not dd.is_worker() and not judge(value, cfg.min_kept):
            raise BudgetError(f"the student keeps {_pct(value)} of the teacher ({metric} on the validation split), "
                              f"below --min-kept {cfg.min_kept:g}; under torchrun no fallback is tried: "
                              f"{advice(cfg)}")
        return out
    chosen, tries = search(cfg, kind, run, discard=engine.discard,
                           log=lambda m: console.print(m, markup=False, highlight=False, soft_wrap=True))
    chosen.budget = record(tries, cfg, chosen.check.get("kept_metric", "kept"))
    # the other tries' default checkpoint folders go with the chosen one's if a later step fails
    dirs = {str(d): d for o in outcomes for d in o.created_dirs}.values()
    chosen.created_dirs = sorted(dirs, key=lambda d: d.name == engine.RUNS_DIR)  # their parent folder last
    return chosen
