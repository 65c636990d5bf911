"""Runtimes that time an artifact. Native runners run inside a fresh worker process
(benchmarks.worker); the browser runner drives pages in headless Chromium.

A native runner module has:
    load(path, threads) -> session               session.run(x: np.ndarray) -> np.ndarray (first output)
    version() -> str
The export targets' runners are declared where the target is (exporters.TARGETS: onnxruntime, litert);
PyTorch's, the reference row, is here.
"""
from __future__ import annotations

import importlib
from types import ModuleType

import exporters
from compressor.core.registry import Registry


def _native() -> Registry[str]:
    reg: Registry[str] = Registry("runner")
    for name in exporters.TARGETS:
        t = exporters.TARGETS.get(name)
        if t.runtime and t.runner:
            reg.add(t.runtime, t.runner)
    reg.add("torch", "benchmarks.runners.torch_eager")
    return reg


NATIVE = _native()


def get(name: str) -> ModuleType:
    return importlib.import_module(NATIVE.get(name))
