"""The Python API: what the `compress` command runs, as functions.

    from compressor import compress, load_manifest
    m = compress("teacher.pt", targets=["onnx", "tflite"], quantize="int8", out="out/")
    m.artifact("onnx:int8").path, m.artifact("onnx:int8").data["accuracy"]

Heavy libraries (torch, onnxruntime, tensorflow) are imported by the steps that need them, not here,
so `import compressor` stays fast. Errors are compressor.core.errors' types (CompressError and its
kinds ParityError, BudgetError, ConverterError), the same the CLI turns into exit codes.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.errors import CompressError


@dataclass(frozen=True)
class ArtifactEntry:
    """One artifact of a manifest: its name, absolute path and every recorded figure (`data`)."""

    name: str
    path: Path
    data: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Manifest:
    """A run's manifest.json, read: `data` is the document, `artifacts` its rows with absolute paths."""

    folder: Path
    data: dict[str, Any] = field(repr=False)

    @property
    def artifacts(self) -> list[ArtifactEntry]:
        return [ArtifactEntry(a["name"], self.folder / a["path"], a) for a in self.data.get("artifacts", [])]

    def artifact(self, name: str) -> ArtifactEntry:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise CompressError(f"no artifact {name!r} in {self.folder}/manifest.json; "
                            f"known: {', '.join(a.name for a in self.artifacts)}")


def load_manifest(path: str | Path) -> Manifest:
    """Read an output folder's manifest.json (or the file itself)."""
    p = Path(path)
    file = p / "manifest.json" if p.is_dir() else p
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise CompressError(f"cannot read {file} ({e}); give an output folder written by compress") from None
    if not isinstance(data, dict) or "artifacts" not in data:
        raise CompressError(f"{file} is not a manifest written by compress (no artifacts list)")
    return Manifest(file.parent, data)


def compress(model: str | Path, *, targets: Iterable[str] = ("onnx",), out: str | Path = "out",
             data: str = "digits", quantize: Any = None, distill: Any = None, export: Any = None,
             bench: Iterable[str] = (), overwrite: bool = False, quiet: bool = False, **options: Any) -> Manifest:
    """Load, (distil,) export, (quantize, bench,) verify and write `model`'s artifacts into `out`.

    model: a model file, or "demo" for the built-in digits teacher. quantize: "int8" | "fp16" | "dynamic" |
    "qat" or a config (compressor.quantize.StaticInt8, ...). distill: a compressor.distill.config.DistillConfig.
    export: exporters.base.ExportOptions. Other keywords are RunConfig's fields (arch, trust_model,
    input_shape, seed, parity_samples, bench_bounds, bench_device). Returns the written manifest.
    """
    from rich.console import Console

    from . import pipeline
    from .config import RunConfig

    kwargs: dict[str, Any] = {"export": export} if export is not None else {}
    try:
        cfg = RunConfig(model=str(model), targets=tuple(targets), out=str(out), data=data, quantize=quantize,
                        distill=distill, bench=tuple(bench), overwrite=overwrite, **kwargs, **options)
    except TypeError as e:  # an unknown keyword: say which ones exist
        import dataclasses

        known = ", ".join(f.name for f in dataclasses.fields(RunConfig))
        raise CompressError(f"{e}; known options: {known}") from None
    pipeline.run(cfg, Console(stderr=True, quiet=quiet))
    return load_manifest(out)
