"""The training loss per optimizer step, kept small: the manifest's curve of a run of any length.

Steps are averaged in buckets of equal width; when the buckets pass 2 * MAX_POINTS, neighbours merge and
the width doubles, so memory (and the checkpoint's and manifest's share) stays bounded by run length.
"""
from __future__ import annotations

import math
from typing import Any

MAX_POINTS = 250


class StepLog:
    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.width: int = state.get("width", 1)
        self.points: list[list[float]] = [list(p) for p in state.get("points", [])]  # [first step, mean loss]
        self.pending: list[float] = list(state.get("pending", [0, 0.0, 0]))  # first step, loss sum, steps

    def add(self, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            return  # a diverging step stops the run; a NaN would only blank the plotted curve
        if not self.pending[2]:
            self.pending[0] = step
        self.pending[1] += loss
        self.pending[2] += 1
        if self.pending[2] == self.width:
            self.points.append([self.pending[0], self.pending[1] / self.width])
            self.pending = [0, 0.0, 0]
            if len(self.points) >= 2 * MAX_POINTS:
                self.points = [[a[0], (a[1] + b[1]) / 2] for a, b in zip(self.points[::2], self.points[1::2])]
                self.width *= 2

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds (plain lists and numbers: torch.load's weights_only accepts them)."""
        return {"width": self.width, "points": self.points, "pending": self.pending}

    def curve(self) -> list[list[float]]:
        """[first step of the bucket, mean loss] per bucket, the unfinished last one included (6 digits)."""
        pts = self.points + ([[self.pending[0], self.pending[1] / self.pending[2]]] if self.pending[2] else [])
        return [[int(s), round(v, 6)] for s, v in pts]
