"""A model's named inputs and outputs, and one way to call every model: positional tensors in, one tensor or a
tuple of tensors out.

Users bring models that take several tensors (input_ids, attention_mask) and return tuples, lists, dicts or
Hugging Face `ModelOutput`s. `Flat` wraps such a model once, at loading: the exporters, parity checks and
runtimes then see named tensors in a fixed order (compressor/core/feeds.py packs their data).
"""
from __future__ import annotations

import inspect

import torch
from torch import nn

from .errors import CompressError

GENERIC_NAMES = {"x", "inp", "inputs", "args", "input", "self", "data", "tensor"}


def forward_names(model: nn.Module) -> list[str]:
    """The parameter names of a model's forward, as far as they can be read (TorchScript schema, torch.export
    program, Python signature); [] when they cannot."""
    try:
        if isinstance(model, torch.jit.ScriptModule):
            return [a.name for a in model.forward.schema.arguments[1:]]
        spec = getattr(getattr(model, "program", None), "in_names", None)
        if spec is not None:  # a torch.export program (compressor/pt2.py)
            return list(spec)
        return [p for p in inspect.signature(model.forward).parameters if p != "self"]
    except (TypeError, ValueError, AttributeError, RuntimeError):
        return []


def public_name(name: str) -> str:
    """The name an artifact gives an input: the model's own (input_ids, pixel_values), a generic one as "input"."""
    return "input" if name in GENERIC_NAMES or not name.isidentifier() else name


def flatten(out: object) -> tuple[list[str], list[torch.Tensor]]:
    """A model's output as (names, tensors): a tensor is "output"; a dict or ModelOutput keeps its keys
    (None values dropped, as transformers does); a tuple or list is output_0, output_1, ..."""
    if isinstance(out, torch.Tensor):
        return ["output"], [out]
    if isinstance(out, dict):  # transformers' ModelOutput is an OrderedDict
        items = [(str(k), v) for k, v in out.items() if v is not None]
    elif isinstance(out, (tuple, list)):
        items = [(f"output_{i}", v) for i, v in enumerate(out)]
    else:
        raise CompressError(f"the model returns {type(out).__name__}; return a tensor, or a tuple, list or dict "
                            "of tensors")
    if not items:
        raise CompressError("the model returns no tensors")
    bad = [k for k, v in items if not isinstance(v, torch.Tensor)]
    if bad:
        raise CompressError(f"the model's output {bad[0]!r} is not a tensor (nested outputs such as caches are not "
                            "supported); wrap the model to return a flat tuple or dict of tensors")
    return [k for k, _ in items], [v for _, v in items]


class Flat(nn.Module):
    """The user's model called with tensors in `input_names` order (by keyword when its forward takes them so),
    returning its one tensor, or a tuple in the order of `output_names` (learnt at the first call)."""

    def __init__(self, module: nn.Module, input_names: list[str], by_name: bool) -> None:
        super().__init__()
        self.inner = module
        self.input_names = list(input_names)
        self.by_name = by_name
        self.output_names: list[str] | None = None
        self.static_batch = getattr(module, "static_batch", None)
        self.scripted = isinstance(module, torch.jit.ScriptModule)  # only the TorchScript ONNX exporter takes it
        self.training = module.training  # the wrapper's mode is the model's: predict() restores it on both

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.inner(**dict(zip(self.input_names, xs))) if self.by_name else self.inner(*xs)
        names, tensors = flatten(out)
        if self.output_names is None:
            self.output_names = names
        elif names != self.output_names:
            raise CompressError(f"the model's outputs changed between calls ({self.output_names} then {names})")
        return tensors[0] if len(tensors) == 1 else tuple(tensors)

    def train(self, mode: bool = True) -> Flat:
        self.training = mode
        self.inner.train(mode)
        return self


def call_names(module: nn.Module, given: list[str]) -> tuple[list[str], bool]:
    """How to call `module` with the inputs `given` (names, or "" where the user gave none): the names the
    artifacts will carry, and whether to pass the tensors by keyword (every name is a forward parameter)."""
    params = forward_names(module)
    keyword_only = bool(getattr(getattr(module, "program", None), "keyword_only", False))
    names = [g or (params[i] if i < len(params) else f"input_{i}") for i, g in enumerate(given)]
    by_name = keyword_only or (len(given) > 1 and all(g in params for g in names))
    if keyword_only and any(n not in params for n in names):
        raise CompressError(f"the program takes the inputs {', '.join(params)} by name; give --input with those "
                            "names")
    return names, by_name
