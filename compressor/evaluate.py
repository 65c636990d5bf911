"""Running a PyTorch model on data: seeding, batched logits, accuracy. (Training is compressor.distill.trainer:
`fit` for plain supervised training, `train` for distillation.)"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .core import feeds
from .core.errors import CompressError
from .data import Dataset


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def as_tensors(x: np.ndarray) -> list[torch.Tensor]:
    """A batch of inputs (a plain array, or a packed one with one field per input) as the model's arguments."""
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in feeds.fields(x)]


def _outputs(model: nn.Module, x: np.ndarray) -> list[torch.Tensor]:
    try:
        out = model(*as_tensors(x))
    except (IndexError, RuntimeError, ValueError, TypeError) as e:  # the user's model refusing the user's data
        why = ([ln.strip() for ln in str(e).splitlines() if ln.strip()] or [""])[-1][:200]
        raise CompressError(f"the model fails on the data ({type(e).__name__}: {why}); check that the data fits "
                            "it (token ids below its vocabulary size, the right input order and shapes)") from None
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, tuple) and all(isinstance(o, torch.Tensor) for o in out):  # compressor.core.signature.Flat
        return list(out)
    # loading wraps such models; a module built in Python and handed over directly may still be one
    raise CompressError(f"the model returns a {type(out).__name__}, not tensors; wrap it to return a tensor or "
                        "a tuple of tensors")


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """The outputs of `model` in eval mode, as float32: one array, or for several outputs one packed array with
    a field per output (named as the model names them: compressor.core.signature.Flat.output_names)."""
    was_training = model.training
    model.eval()
    try:
        parts = [_outputs(model, x[i:i + batch]) for i in range(0, len(x), batch)]
    finally:
        model.train(was_training)
    outs = [torch.cat([p[j] for p in parts]).float().numpy() for j in range(len(parts[0]))]
    if len(outs) == 1:
        return outs[0]
    names = getattr(model, "output_names", None) or [f"output_{j}" for j in range(len(outs))]
    return feeds.pack(dict(zip(names, outs)))


def accuracy(model: nn.Module, data: Dataset) -> float:
    if data.y is None or len(data) == 0:
        return float("nan")
    return float((predict(model, data.x).argmax(1) == data.y).mean())
