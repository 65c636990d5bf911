"""What the pipeline's steps read and extend, one typed record per run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ..config import RunConfig
from ..core.artifact import Artifact
from ..data import Splits
from ..loading import LoadedModel


@dataclass
class State:
    cfg: RunConfig
    console: Console
    workdir: Path = Path(".")  # the staged output folder (published atomically at the end)
    teacher: LoadedModel | None = None
    model: LoadedModel | None = None  # what is exported: the student, or the teacher itself
    splits: Splits | None = None
    artifacts: list[Artifact] = field(default_factory=list)  # checked, in the order they were made
    sections: dict[str, Any] = field(default_factory=dict)  # manifest sections (data, teacher, student, ...)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per step
    distilled: Any = None  # the distillation's Outcome: its default checkpoints go if a later step fails
    class_names: tuple[str, ...] | None = None  # a classifier's labels (the model's, or the class folders')
