"""A rich progress bar per training stage, showing epoch, running loss and best validation score."""
from __future__ import annotations

from typing import Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Bar:
    def __init__(self, console: Console, title: str, epochs: int) -> None:
        self.title, self.epochs = title, epochs
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                                 transient=False, disable=console.quiet)
        self.task = None

    def start(self, total: int, completed: int) -> None:
        self.task = self.progress.add_task(self.title, total=total, completed=completed, info="")

    def advance(self, epoch: int, loss: float, best: float, steps: int = 1) -> None:
        # agreement, accuracy and cosine show as percentages; minus a regression's error as a number
        best_txt = f"best val {100 * best:.2f}%" if best >= 0 else f"best val {best:.4g}" if best > -1e300 else ""
        self.progress.update(self.task, advance=steps,
                             info=f"epoch {epoch + 1}/{self.epochs} loss {loss:.4f} {best_txt}")

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
