"""`compress bench`'s runner for .onnx files: ONNX Runtime, CPUExecutionProvider, fixed intra-op threads."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class Session:
    def __init__(self, path: str | Path, threads: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads  # 0: ORT's default (one per physical core)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name
        fixed = self.sess.get_inputs()[0].shape[0]
        self.fixed = fixed if isinstance(fixed, int) and fixed > 0 else None  # a model exported at a fixed batch

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.fixed is None or len(x) == self.fixed:
            return self.sess.run(None, {self.name: x})[0]
        # another batch of a fixed-batch model: chunks of its batch (the last one padded), as an app runs it
        outs = []
        for i in range(0, len(x), self.fixed):
            chunk = x[i:i + self.fixed]
            pad = np.zeros((self.fixed - len(chunk), *chunk.shape[1:]), chunk.dtype)
            outs.append(self.sess.run(None, {self.name: np.concatenate([chunk, pad])})[0][:len(chunk)])
        return np.concatenate(outs)


def load(path: str | Path, threads: int) -> Session:
    return Session(path, threads)


def version() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"
