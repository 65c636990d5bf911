"""A rich progress bar per training stage: steps, epoch, running loss, best validation score, samples/s, ETA."""
from __future__ import annotations

import math
import time
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def eta_text(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "ETA -"
    s = round(seconds)
    return f"ETA {s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"ETA {s // 60}:{s % 60:02d}"


class Bar:
    """Counts optimizer steps. Throughput and ETA are measured over this process's own steps (a resumed run's
    earlier ones took unknown time), from wall time that includes validation and checkpoints: the ETA of a whole
    run, not of the training steps alone."""

    def __init__(self, console: Console, title: str, epochs: int) -> None:
        self.title, self.epochs = title, epochs
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TextColumn("{task.fields[speed]}"),
                                 TimeElapsedColumn(), console=console, transient=False, disable=console.quiet)
        self.task = None
        self.total = self.done = self.first = self.samples = 0
        self.t0 = time.perf_counter()

    def start(self, total: int, completed: int) -> None:
        self.total, self.done, self.first, self.samples = total, completed, completed, 0
        self.t0 = time.perf_counter()
        self.task = self.progress.add_task(self.title, total=total, completed=completed, info="", speed="")

    def rate(self) -> tuple[float, float]:
        """Samples per second and seconds left, from this process's steps so far (NaN before the first)."""
        spent = time.perf_counter() - self.t0
        steps = self.done - self.first
        if steps <= 0 or spent <= 0:
            return float("nan"), float("nan")
        return self.samples / spent, spent / steps * (self.total - self.done)

    def advance(self, epoch: int, loss: float, best: float, steps: int = 1, samples: int = 0) -> None:
        self.done += steps
        self.samples += samples
        # agreement, accuracy and cosine show as percentages; minus a regression's error as a number
        best_txt = f"best val {100 * best:.2f}%" if best >= 0 else f"best val {best:.4g}" if best > -1e300 else ""
        per_s, left = self.rate()
        speed = f"{per_s:,.0f} samples/s {eta_text(left)}" if math.isfinite(per_s) else ""
        self.progress.update(self.task, advance=steps, speed=speed,
                             info=f"epoch {epoch + 1}/{self.epochs} loss {loss:.4f} {best_txt}")

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
