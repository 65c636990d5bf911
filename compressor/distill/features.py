"""Intermediate features of a model, by layer name, through forward hooks.

A feature is named "layer" (the layer's output) or "layer@in" (its input: used for the
penultimate representation, the input of the last Linear layer).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..core.errors import CompressError


def layer_names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_modules() if n]


def find_layer(model: nn.Module, name: str, role: str) -> nn.Module:
    if isinstance(model, torch.jit.ScriptModule) or not hasattr(model, "named_modules"):
        raise CompressError(f"the {role} is a TorchScript/exported program, whose layers cannot be tapped; "
                            "give it as a state_dict with --arch (or a pickled module with --trust-model)")
    modules = dict(model.named_modules())
    if name not in modules or not name:
        names = layer_names(model)
        shown = ", ".join(names[:60]) + (" ..." if len(names) > 60 else "")
        raise CompressError(f"the {role} has no layer {name!r}; available layers: {shown}")
    return modules[name]


def last_linear(model: nn.Module, role: str) -> str:
    """Name of the classifier layer (the last nn.Linear), whose input is the penultimate feature."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise CompressError(f"CRD needs the {role}'s penultimate feature, taken at its last nn.Linear layer, "
                            f"but the {role} has none; use kd or dkd, or hint with named layers")
    return names[-1]


@contextlib.contextmanager
def tap(model: nn.Module, features: list[str], role: str) -> Iterator[dict[str, torch.Tensor]]:
    """While active, every forward pass of `model` fills the yielded dict {feature: tensor}."""
    got: dict[str, torch.Tensor] = {}
    handles = []
    for feat in features:
        name, _, where = feat.partition("@")
        layer = find_layer(model, name, role)

        def hook(_m, inputs, output, feat=feat, where=where):
            value = inputs[0] if where == "in" else output
            got[feat] = value[0] if isinstance(value, (tuple, list)) else value

        handles.append(layer.register_forward_hook(hook))
    try:
        yield got
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def probe(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], features: list[str], role: str
          ) -> dict[str, torch.Size]:
    """Shapes of the features for one example (batch 1; a tuple for several inputs), in eval mode."""
    from .batches import args

    was = model.training
    model.eval()
    with tap(model, features, role) as got:
        model(*args(example))
    model.train(was)
    missing = [f for f in features if f not in got]
    if missing:
        raise CompressError(f"the {role}'s layer(s) {', '.join(missing)} did not run in a forward pass; "
                            "choose layers on the forward path")
    return {k: v.shape for k, v in got.items()}
