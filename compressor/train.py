"""Supervised training (the built-in teacher) and evaluation helpers; the loop itself is shared with
distillation in compressor.distill.trainer."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import Dataset


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Logits of `model` in eval mode, as a float32 array."""
    was_training = model.training
    model.eval()
    outs = [model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))) for i in range(0, len(x), batch)]
    model.train(was_training)
    return torch.cat(outs).float().numpy()


def accuracy(model: nn.Module, data: Dataset) -> float:
    if data.y is None or len(data) == 0:
        return float("nan")
    return float((predict(model, data.x).argmax(1) == data.y).mean())


def fit(model: nn.Module, train: Dataset, val: Dataset, *, epochs: int = 20, lr: float = 3e-3,
        batch: int = 64, seed: int = 0, on_epoch=None, augment: str = "none") -> nn.Module:
    """Cross-entropy training with AdamW and a cosine schedule; keeps the best epoch on `val`.

    The same loop as distillation (compressor.distill.trainer) with the "labels" method alone;
    `augment` takes the same choices as DistillConfig.augment (e.g. "shift": random translations).
    """
    from .distill.config import DistillConfig
    from .distill.methods import DistillModule, Labels, Setup
    from .distill.trainer import TrainData
    from .distill.trainer import train as run_loop

    if train.y is None or val.y is None:
        raise ValueError("fit needs labelled training and validation data")
    cfg = DistillConfig(methods=("labels",), alpha=1.0, epochs=epochs, lr=lr, batch_size=batch, seed=seed,
                        augment=augment)
    example = torch.from_numpy(train.x[:1])
    dm = DistillModule(model, {"labels": Labels(Setup(cfg, None, model, example, len(train)))}, cfg, labelled=True)
    run_loop(dm, TrainData(train.x, train.y, val.x, val.y), cfg, None, on_epoch=on_epoch)
    return model.eval()
