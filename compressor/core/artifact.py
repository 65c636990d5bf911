"""What an export step produces: an artifact (a file or folder) and the tensors it takes and gives."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CompressError
from .parity import Parity, require


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]
    dtype: str


def batch1(shape: tuple[Any, ...] | list[Any]) -> tuple[int, ...]:
    """A spec's shape with batch 1 and every unknown (symbolic or -1) dimension as 1."""
    dims = []
    for d in shape:
        try:
            n = int(d)
        except (TypeError, ValueError):  # a symbolic dimension such as "batch"
            n = -1
        dims.append(n if n > 0 else 1)
    if not dims:
        raise CompressError("an artifact has a scalar input; cannot benchmark it")
    dims[0] = 1
    return tuple(dims)


@dataclass
class Artifact:
    path: Path  # a file or a folder inside the run's output
    format: str  # onnx | tflite | tfjs | onnx-web | web-bundle
    variant: str  # float32 | float16 | int8 | ...
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    opset: int | None = None
    convert_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    parity: Parity | None = None

    @property
    def name(self) -> str:
        return f"{self.format}:{self.variant}"


def require_parity(a: Artifact) -> None:
    """Raise when the artifact's parity failed (or was never checked), so that it is never written."""
    require(a.name, a.parity)
