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

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.name: x})[0]


def load(path: str | Path, threads: int) -> Session:
    return Session(path, threads)


def version() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"
