"""Exporters: one module per target, each with `export(job)` and `validate(artifact, job)`.

Modules are imported only when their target is used, so that heavy runtimes
(tensorflow, onnxruntime) stay out of `import compressor` and `compress --help`.
Adding a target = adding one module and one line below.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from compressor.registry import Registry

TARGETS: Registry[str] = Registry("target")
TARGETS.add("onnx", "exporters.onnx")
TARGETS.add("tflite", "exporters.tflite")
TARGETS.add("tfjs", "exporters.tfjs")
TARGETS.add("onnx-web", "exporters.onnx_web")

# `--target all`: every target, in an order where each can reuse what the previous made.
ALL = ("onnx", "tflite", "tfjs")


def get(name: str) -> ModuleType:
    """The exporter module for a target name (error lists the known targets)."""
    return importlib.import_module(TARGETS.get(name))


def expand(targets: str) -> list[str]:
    """'onnx,tflite' or 'all' -> validated list of target names."""
    names: list[str] = []
    for t in (s.strip() for s in targets.split(",")):
        for n in ALL if t == "all" else (t,):
            TARGETS.get(n)
            if n not in names:
                names.append(n)
    return names
