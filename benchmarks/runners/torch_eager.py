"""PyTorch eager (TorchScript or torch.export program), the reference row."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class Session:
    def __init__(self, path: str | Path, threads: int) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        if str(path).endswith(".pt2"):
            self.model = torch.export.load(str(path)).module()
        else:
            self.model = torch.jit.load(str(path), map_location="cpu")
            self.model.eval()

    def run(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            y = self.model(self.torch.from_numpy(x))
        y = y[0] if isinstance(y, (tuple, list)) else y
        return y.numpy()


def load(path: str | Path, threads: int) -> Session:
    return Session(path, threads)


def version() -> str:
    import torch

    return f"torch {torch.__version__} eager"
