"""`compress bench`'s runner for .tflite files: the LiteRT interpreter (ai-edge-litert), XNNPACK delegate."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class Session:
    def __init__(self, path: str | Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        # num_threads=None lets LiteRT choose; an explicit count is what the row says it measured.
        self.it = Interpreter(model_path=str(path), num_threads=threads or None)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]
        self.shape = tuple(self.inp["shape"])

    def _resize(self, shape: tuple[int, ...]) -> None:
        try:
            self.it.resize_tensor_input(self.inp["index"], list(shape))
            self.it.allocate_tensors()
        except Exception:
            # a graph with a batch baked into a Reshape cannot take another batch: stay usable at the old one
            self.it.resize_tensor_input(self.inp["index"], list(self.shape))
            self.it.allocate_tensors()
            raise
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]
        self.shape = shape

    def run(self, x: np.ndarray) -> np.ndarray:
        if tuple(x.shape) != self.shape:
            self._resize(tuple(x.shape))
        dt = self.inp["dtype"]
        if np.issubdtype(dt, np.integer) and not np.issubdtype(x.dtype, np.integer):
            # a fully-quantized model takes quantized inputs: an app would quantize them too
            scale, zero = self.inp["quantization"]
            info = np.iinfo(dt)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dt)
        self.it.set_tensor(self.inp["index"], x.astype(dt, copy=False))
        self.it.invoke()
        y = self.it.get_tensor(self.out["index"])
        if np.issubdtype(y.dtype, np.integer):
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y


def load(path: str | Path, threads: int) -> Session:
    return Session(path, threads)


def version() -> str:
    from importlib.metadata import version as v

    return f"ai-edge-litert {v('ai-edge-litert')} (XNNPACK)"
