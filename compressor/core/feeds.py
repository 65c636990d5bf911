"""Several named tensors as one array: a numpy structured array with one field per tensor.

A model with several inputs (input_ids, attention_mask) or several outputs (boxes, scores) keeps its data
batch-first in one array whose record holds every tensor of a sample: `x[i]`, `x[idx]`, `x[:n]`, a split,
a memmap, all work as for a plain array, and the tensors come out by name (`fields(x)`). A model with one
input and one output keeps plain arrays; every helper here takes both.
"""
from __future__ import annotations

import numpy as np

from .errors import CompressError


def pack(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """{name: (n, ...) array} -> one (n,) structured array; a single tensor stays a plain array."""
    if not arrays:
        raise CompressError("no tensors to pack")
    if len(arrays) == 1:
        return np.asarray(next(iter(arrays.values())))
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1:
        counts = ", ".join(f"{k}: {len(a)}" for k, a in arrays.items())
        raise CompressError(f"the tensors hold different numbers of samples ({counts}); give as many of each")
    n = sizes.pop()
    dtype = np.dtype([(k, np.asarray(a).dtype, np.asarray(a).shape[1:]) for k, a in arrays.items()])
    out = np.empty(n, dtype=dtype)
    for k, a in arrays.items():
        out[k] = a
    return out


def is_packed(x: np.ndarray) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.names is not None


def names(x: np.ndarray) -> tuple[str, ...]:
    """The tensors' names ((), for a plain array)."""
    return tuple(x.dtype.names) if is_packed(x) else ()


def fields(x: np.ndarray) -> list[np.ndarray]:
    """The tensors of a batch in order, each contiguous (batch first); a plain array is the one tensor."""
    if not is_packed(x):
        return [np.asarray(x)]
    return [np.ascontiguousarray(x[k]) for k in x.dtype.names]


def as_dict(x: np.ndarray, default_names: tuple[str, ...] = ("input",)) -> dict[str, np.ndarray]:
    """{name: tensor}, as ONNX Runtime and TF signatures take them."""
    if is_packed(x):
        return {k: np.ascontiguousarray(x[k]) for k in x.dtype.names}
    return {default_names[0]: np.asarray(x)}
