"""Plain supervised training and evaluation, used for the built-in teacher."""
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
        batch: int = 64, seed: int = 0, on_epoch=None) -> nn.Module:
    """Cross-entropy training with Adam and a cosine schedule; keeps the best epoch on `val`."""
    gen = seed_everything(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y)
    best, best_state = -1.0, None
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
        acc = accuracy(model, val)
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
        if on_epoch:
            on_epoch(epoch, acc)
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()
