"""`compress bench`'s runner for .onnx files: ONNX Runtime, CPUExecutionProvider, fixed intra-op threads."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compressor.core import feeds
from compressor.core.errors import CompressError, ConverterError


class Session:
    """One ONNX Runtime session; `run` takes a batch (a plain array, or a packed one with a field per input,
    compressor/core/feeds.py) and gives the outputs the same way."""

    def __init__(self, path: str | Path, threads: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads  # 0: ORT's default (one per physical core)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.sess.get_inputs()]
        self.out_names = [o.name for o in self.sess.get_outputs()]
        fixed = self.sess.get_inputs()[0].shape[0]
        self.fixed = fixed if isinstance(fixed, int) and fixed > 0 else None  # a model exported at a fixed batch

    def _run(self, x: np.ndarray) -> np.ndarray:
        tensors = feeds.fields(x)
        if len(tensors) != len(self.names):
            raise CompressError(f"the ONNX model takes {len(self.names)} inputs ({', '.join(self.names)}), "
                                f"given {len(tensors)}")
        try:
            outs = self.sess.run(None, dict(zip(self.names, tensors)))
        except Exception as e:  # noqa: BLE001 - onnxruntime's Fail/InvalidArgument: a graph that cannot run this batch
            why = " ".join(str(e).split())[-240:]
            raise ConverterError(f"ONNX Runtime cannot run the model on a batch of {len(x)} ({why}); a shape traced "
                                 "into the graph may fix the batch: export the model with torch.export "
                                 "(dynamic batch) or run at the batch it was exported with") from None
        return outs[0] if len(outs) == 1 else feeds.pack(dict(zip(self.out_names, outs)))

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.fixed is None or len(x) == self.fixed:
            return self._run(x)
        # another batch of a fixed-batch model: chunks of its batch (the last one padded), as an app runs it
        outs = []
        for i in range(0, len(x), self.fixed):
            chunk = x[i:i + self.fixed]
            pad = np.zeros((self.fixed - len(chunk), *chunk.shape[1:]), chunk.dtype)
            outs.append(self._run(np.concatenate([chunk, pad]))[:len(chunk)])
        return np.concatenate(outs)


def load(path: str | Path, threads: int) -> Session:
    return Session(path, threads)


def version() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"
