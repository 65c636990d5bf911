"""Running a PyTorch model on data: seeding, batched logits, accuracy. (Training is compressor.distill.trainer:
`fit` for plain supervised training, `train` for distillation.)"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .core.errors import CompressError
from .data import Dataset


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def _logits(model: nn.Module, x: np.ndarray) -> torch.Tensor:
    out = model(torch.from_numpy(np.ascontiguousarray(x)))
    if not isinstance(out, torch.Tensor):  # loading refuses such models; a module built in Python may still be one
        raise CompressError(f"the model returns a {type(out).__name__}, not one tensor of logits; wrap it to return "
                            "only the logits")
    return out


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Logits of `model` in eval mode, as a float32 array."""
    was_training = model.training
    model.eval()
    try:
        outs = [_logits(model, x[i:i + batch]) for i in range(0, len(x), batch)]
    finally:
        model.train(was_training)
    return torch.cat(outs).float().numpy()


def accuracy(model: nn.Module, data: Dataset) -> float:
    if data.y is None or len(data) == 0:
        return float("nan")
    return float((predict(model, data.x).argmax(1) == data.y).mean())
