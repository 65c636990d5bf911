"""Runtimes that time an artifact. Native runners run inside a fresh worker process
(benchmarks.worker); the browser runner drives pages in headless Chromium.

A native runner module has:
    FORMATS: tuple[str, ...]                     artifact formats it runs
    load(path, threads) -> session               session.run(x: np.ndarray) -> np.ndarray (first output)
    version() -> str
"""
from __future__ import annotations

import importlib
from types import ModuleType

from compressor.registry import Registry

NATIVE: Registry[str] = Registry("runner")
NATIVE.add("onnxruntime", "benchmarks.runners.ort")
NATIVE.add("litert", "benchmarks.runners.litert")
NATIVE.add("torch", "benchmarks.runners.torch_eager")


def get(name: str) -> ModuleType:
    return importlib.import_module(NATIVE.get(name))
