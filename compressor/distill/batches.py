"""Batches of a model's inputs, and the one output that is distilled.

A model may take several inputs (input_ids + attention_mask): its data is then one packed array with a field per
input (compressor/core/feeds.py), indexed by sample like a plain array, and every model (teacher and student) is
called with every input, in order (compressor.core.signature.Flat). A model may also return several outputs; one
of them is distilled (`--distill-output NAME`, the first by default), and its kind picks the loss.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..core import feeds
from ..core.errors import CompressError
from ..evaluate import as_tensors
from ..loading import LoadedModel

Inputs = tuple[torch.Tensor, ...]  # one tensor per model input, batch first


def take(x: np.ndarray, idx: torch.Tensor | np.ndarray | slice) -> Inputs:
    """Rows `idx` of the inputs (a plain or packed array, in memory or memory-mapped) as the model's arguments.
    Indexing the array per batch, not a tensor of all of it, keeps a disk-backed data set on disk."""
    rows = idx.numpy() if isinstance(idx, torch.Tensor) else idx
    if isinstance(rows, slice):
        # a copy with plain strides, as fancy indexing makes: a view would keep the data set's strides, and
        # convolutions pick kernels by stride (a size-1 channel's stride), so the cached teacher outputs would
        # differ in the last bit from the same teacher run online on a batch
        rows = np.arange(len(x))[rows]
    return tuple(as_tensors(x[rows]))


def args(example: torch.Tensor | Sequence[torch.Tensor]) -> Inputs:
    """A model's example (LoadedModel.example: one tensor, or a tuple for several inputs) as arguments."""
    return (example,) if isinstance(example, torch.Tensor) else tuple(example)


def to(xs: Inputs, device: torch.device | str) -> Inputs:
    return tuple(x.to(device) for x in xs)


def rows(xs: Inputs, keep: torch.Tensor) -> Inputs:
    return tuple(x[keep] for x in xs)


def pick(out: torch.Tensor | Sequence[torch.Tensor], index: int) -> torch.Tensor:
    """The distilled output of a model's answer: its one tensor, or the `index`-th of a tuple."""
    if isinstance(out, torch.Tensor):
        return out
    return out[index]


def pick_array(out: np.ndarray, index: int) -> np.ndarray:
    """The distilled output from `evaluate.predict`'s answer: the array, or the index-th field of a packed one."""
    if not feeds.is_packed(out):
        return out
    return np.ascontiguousarray(out[out.dtype.names[index]])


def choose_output(teacher: LoadedModel, name: str | None) -> tuple[int, str, str]:
    """(index, name, kind) of the output to distil: `name` (--distill-output), else the first one."""
    names = [o.name for o in teacher.outputs] or ["output"]
    kinds = list(teacher.kinds) or [teacher.task]
    if name is None:
        return 0, names[0], kinds[0]
    if name not in names:
        raise CompressError(f"--distill-output {name!r}: {teacher.source} has no such output; choose from: "
                            f"{', '.join(names)}")
    i = names.index(name)
    return i, name, kinds[i]
