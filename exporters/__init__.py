"""Exporters: one module (or small package) per target, each with `export(job)` and `validate(artifact, job)`.

A target is registered by one line below, which also tells `compress bench` how to time what it writes
(its native runtime and runner module) and how to recognise a loose artifact file. Modules are imported
only when their target is used, so that heavy runtimes (tensorflow, onnxruntime) stay out of
`import compressor` and `compress --help`. Adding a target = one module + one line (docs/architecture.md).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from compressor.core.errors import CompressError
from compressor.core.registry import Registry


@dataclass(frozen=True)
class Target:
    module: str  # has NAME, export(job), validate(artifact, job), input_spec(path)
    format: str | None = None  # the artifact format `compress bench` times; None: nothing of its own
    runtime: str | None = None  # native runtime that times it (benchmark rows are named "<runtime>-<n>t")
    runner: str | None = None  # module with load(path, threads) -> session and version()
    files: tuple[str, ...] = ()  # a loose artifact: a file suffix (".onnx") or a file inside a folder

    def matches(self, path: Path) -> bool:
        return any(path.is_dir() and (path / f).is_file() if not f.startswith(".") else path.suffix == f
                   for f in self.files)


TARGETS: Registry[Target] = Registry("target")
TARGETS.add("onnx", Target("exporters.onnx", "onnx", "onnxruntime", "exporters.onnx.runner", (".onnx",)))
TARGETS.add("tflite", Target("exporters.tflite", "tflite", "litert", "exporters.tflite.runner", (".tflite",)))
TARGETS.add("tfjs", Target("exporters.tfjs", "tfjs", files=("model.json",)))
TARGETS.add("onnx-web", Target("exporters.onnx_web"))

# `--target all`: every target, in an order where each can reuse what the previous made.
ALL = ("onnx", "tflite", "tfjs")


def get(name: str) -> ModuleType:
    """The exporter module for a target name (error lists the known targets)."""
    return importlib.import_module(TARGETS.get(name).module)


def expand(targets: str) -> list[str]:
    """'onnx,tflite' or 'all' -> validated target names, in registry order (later targets reuse earlier
    ones' files, so the order the user typed them in does not matter)."""
    names: set[str] = set()
    for t in (s.strip() for s in targets.split(",")):
        for n in ALL if t == "all" else (t,):
            TARGETS.get(n)
            names.add(n)
    return [n for n in TARGETS if n in names]


def prepare(job, targets: list[str]) -> None:
    """Let each target start its slow work in the background (exporters/background.py: an optional
    `prepare(job)` in its module); `stop(job)` ends what is still running when the export step ends."""
    for name in targets:
        begin = getattr(get(name), "prepare", None)
        if begin is not None:
            begin(job)


def stop(job) -> None:
    from .background import stop_all

    stop_all(job.shared.pending)


def by_format(fmt: str) -> Target:
    """The target whose artifacts have this format (onnx, tflite, tfjs)."""
    for name in TARGETS:
        if TARGETS.get(name).format == fmt:
            return TARGETS.get(name)
    raise CompressError(f"no target writes {fmt!r} artifacts; known formats: "
                        f"{', '.join(t.format for t in map(TARGETS.get, TARGETS) if t.format)}")


def format_of(path: Path) -> str | None:
    """The format of a loose artifact file or folder, or None when no target recognises it."""
    for name in TARGETS:
        t = TARGETS.get(name)
        if t.format and t.matches(path):
            return t.format
    return None


def input_spec(path: Path, fmt: str) -> tuple[tuple[int, ...], str]:
    """(batch-1 input shape, dtype a benchmark feeds) of an artifact, read from the artifact itself."""
    return importlib.import_module(by_format(fmt).module).input_spec(path)
