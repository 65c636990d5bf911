"""Students: derived from the teacher by structured channel pruning, or loaded from a file.

`--student auto` follows "Search for Better Students to Learn Distilled Knowledge": prune whole
channels of the teacher with torch-pruning's dependency graph (L1-norm importance), so the
student keeps the teacher's layout and starts from its surviving weights, then distil.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..core.errors import CompressError
from ..core.signature import Flat
from ..loading import LoadedModel, load_model
from ..pt2 import ExportedModule
from . import layers_pt2


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """Multiply-accumulates of one forward pass (torch's FLOP counter / 2; works on TorchScript too); `example` is
    one tensor, or a tuple for a model with several inputs."""
    from torch.utils.flop_counter import FlopCounterMode

    from .batches import args

    was = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args(example))
    model.train(was)
    return int(counter.get_total_flops() // 2)


def size_bytes(model: nn.Module) -> int:
    """Bytes of the weights and buffers (what a float32 export stores, before any compression)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def describe(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    return {"parameters": count_params(model), "macs": count_macs(model, example), "size_bytes": size_bytes(model)}


def require_module(m: LoadedModel | nn.Module, role: str, why: str) -> nn.Module:
    module = m.module if isinstance(m, LoadedModel) else m
    inner = module.inner if isinstance(module, Flat) else module  # a model with several inputs or outputs
    if isinstance(inner, (torch.jit.ScriptModule, ExportedModule)):
        kind = "TorchScript" if isinstance(inner, torch.jit.ScriptModule) else "torch.export (.pt2)"
        raise CompressError(f"{why} needs the {role} as a plain nn.Module, but it is a {kind} file; save it as a "
                            "state_dict and pass --arch package.module:Class (or a pickled module with "
                            "--trust-model), or give your own --student FILE")
    return module


@torch.no_grad()
def output_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The layers whose output is the model's output (a classifier's Linear, a dense head's 1x1 conv), found by
    identity in one forward pass; and the last nn.Linear, as before, for models that end in a plain op."""
    produced: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda m, _i, o: produced.append((m, o)))
             for m in model.modules() if not list(m.children())]
    from .batches import args

    try:
        out = model(*args(example))
    finally:
        for h in hooks:
            h.remove()
    outs = out if isinstance(out, (tuple, list)) else (out,)
    found = [m for m, o in produced if any(o is t for t in outs)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return list({id(m): m for m in found + linears[-1:]}.values())


def _prune(model: nn.Module, example: torch.Tensor, channel_ratio: float) -> nn.Module:
    import torch_pruning as tp

    pruned = copy.deepcopy(model).eval()
    # the output layer's channels are the classes (or a dense map's classes, an embedding's values): never prune
    ignored = output_layers(pruned, example)
    pruner = tp.pruner.BasePruner(pruned, example, importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=channel_ratio, ignored_layers=ignored)
    pruner.step()
    for p in pruned.parameters():  # plain strides: DDP's gradient buckets expect them
        p.data = p.data.clone(memory_format=torch.contiguous_format)
    return pruned


def auto_student(teacher: nn.Module, example: torch.Tensor, ratio: float, ratio_of: str = "params") -> nn.Module:
    """The teacher with channels removed until at most `ratio` of its parameters (or MACs) remain."""
    measure = count_params if ratio_of == "params" else (lambda m: count_macs(m, example))
    full = measure(teacher)
    if ratio >= 1.0:
        return copy.deepcopy(teacher)
    try:
        # parameters fall roughly as (1 - channel_ratio)^2 (MACs too): guess, then bisect near the guess
        guess = 1.0 - ratio ** 0.5
        lo, hi = max(0.0, guess - 0.2), min(0.99, guess + 0.2)
        best = _prune(teacher, example, hi)
        if measure(best) > ratio * full:
            lo, hi = hi, 0.99
            best = _prune(teacher, example, hi)
        for _ in range(7):  # ~0.003 resolution on the channel ratio; each prune rebuilds the graph
            mid = (lo + hi) / 2
            cand = _prune(teacher, example, mid)
            if measure(cand) <= ratio * full:
                best, hi = cand, mid
            else:
                lo = mid
    except CompressError:
        raise
    except Exception as e:  # noqa: BLE001 - torch-pruning fails in many ways on unusual graphs
        raise CompressError(f"torch-pruning could not derive a student from this teacher ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:160]}); give your own --student FILE") from None
    if measure(best) > ratio * full:
        raise CompressError(f"pruning cannot bring the teacher down to {ratio:.0%} of its {ratio_of}; "
                            "choose a larger --ratio or give your own --student FILE")
    return best


def reinitialise(model: nn.Module) -> nn.Module:
    """Fresh random weights in the same architecture (each layer's own reset_parameters)."""
    inner = model.inner if isinstance(model, Flat) else model
    if isinstance(inner, ExportedModule):  # a program's layers are ATen calls, without reset_parameters
        return layers_pt2.reinitialise(model)
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model


def load_student(path: str, teacher: LoadedModel, arch: str | None, trust_model: bool) -> nn.Module:
    several = len(teacher.inputs) > 1  # the student takes the teacher's inputs, by the same names
    st = load_model(path, arch=arch, trust_model=trust_model, input_shape=None if several else teacher.input_shape,
                    inputs=[(i.name, i.shape, i.dtype) for i in teacher.inputs] if several else None)
    module = require_module(st, "student", "training")
    if st.num_outputs != teacher.num_outputs:
        raise CompressError(f"the student {path} has {st.num_outputs} outputs but the teacher has "
                            f"{teacher.num_outputs}; give a student with one output per class")
    return module
