"""Layer-dropped students: `--student layers:K` keeps K of the teacher's N encoder blocks, as DistilBERT did.

The student is a real, smaller model: a copy of the teacher whose block stack (an nn.ModuleList) holds only
the kept blocks, with their weights; the embeddings and the head are the teacher's. The stack is found
generically, as the longest nn.ModuleList of identically-typed blocks (BERT's `encoder.layer`,
nn.TransformerEncoder's `layers`, a ViT's `blocks` ...), not by class name. A torch.export program (.pt2) has
no modules to shorten: its graph is cut instead (compressor/distill/layers_pt2.py), with the same choice of
layers and the same figures.
"""
from __future__ import annotations

import copy

from torch import nn

from ..core.errors import CompressError
from ..core.signature import Flat
from ..pt2 import ExportedModule
from . import layers_pt2
from .students import count_params, require_module

# attributes that record the depth of the stack: rewritten so that the model stays consistent
_DEPTH_ATTRS = ("num_layers", "n_layers", "num_hidden_layers", "n_layer", "depth")
ALTERNATIVES = ("--student auto with --ratio (channel pruning), --student FILE, or --student FILE "
                "--student-arch package.module:Class")


def evenly_spaced(n: int, k: int) -> tuple[int, ...]:
    """k of n indices, first and last kept, evenly spaced: 6 of 12 gives DistilBERT's 0, 2, 4, 7, 9, 11."""
    if not 1 <= k < n:
        raise ValueError(f"keep 1 to {n - 1} of {n} layers, not {k}")
    if k == 1:
        return (n - 1,)  # the block the head was trained on
    return tuple(int(i * (n - 1) / (k - 1) + 0.5) for i in range(k))


def find_stack(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The longest nn.ModuleList (at least 2 long) whose items all have one type; the outermost on ties."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, m in model.named_modules():
        stack = isinstance(m, nn.ModuleList) and len(m) >= 2 and len({type(b) for b in m}) == 1
        if stack and (best is None or len(m) > len(best[1])):
            best = (name, m)
    return best


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (model.get_submodule(path) if path else model), leaf


def _set_depth(model: nn.Module, parent: nn.Module, n: int, k: int) -> None:
    """Depth counters that said n now say k: the stack's owner's own (nn.TransformerEncoder.num_layers) and
    every config object (Hugging Face's num_hidden_layers; one object shared by the submodules)."""
    holders = [parent] + [m.config for m in model.modules() if hasattr(m, "config")]
    for h in {id(h): h for h in holders}.values():
        for attr in _DEPTH_ATTRS:
            if getattr(h, attr, None) == n and isinstance(getattr(h, attr), int):
                setattr(h, attr, k)


def _kept(k: int, n: int, name: str, role: str) -> tuple[int, ...]:
    if k >= n:
        raise CompressError(f"--student layers:{k}: the {role} has {n} layers in {name}; keep fewer, "
                            f"1 to {n - 1}")
    return evenly_spaced(n, k)


def drop_layers(teacher: nn.Module, k: int, role: str = "teacher") -> tuple[nn.Module, dict]:
    """A copy of `teacher` with k of its N stacked blocks (evenly spaced, with their weights); and the
    manifest's figures: the stack, the kept indices, parameters before and after."""
    inner = teacher.inner if isinstance(teacher, Flat) else teacher
    if isinstance(inner, ExportedModule):
        return _drop_program_layers(teacher, inner, k, role)
    require_module(teacher, role, f"--student layers:{k}")
    found = find_stack(teacher)
    if found is None:
        raise CompressError(f"--student layers:{k} needs a stack of encoder layers (an nn.ModuleList of at least "
                            f"2 blocks of one type), and the {role} has none; use {ALTERNATIVES}")
    name, stack = found
    n = len(stack)
    kept = _kept(k, n, name, role)
    student = copy.deepcopy(teacher)
    parent, leaf = _parent(student, name)
    old = getattr(parent, leaf)
    setattr(parent, leaf, nn.ModuleList(old[i] for i in kept))
    _set_depth(student, parent, n, k)
    for new_idx, block in enumerate(getattr(parent, leaf)):
        for m in block.modules():  # Hugging Face attention numbers its layer (key/value caches by index)
            if isinstance(getattr(m, "layer_idx", None), int):
                m.layer_idx = new_idx
    # named inside the user's model, not the wrapper of a model with several inputs (compressor.core.signature.Flat)
    info = {"kind": "layers", "stack": name.removeprefix("inner.") if isinstance(teacher, Flat) else name,
            "teacher_layers": n, "kept_layers": list(kept),
            "parameters_before": count_params(teacher), "parameters_after": count_params(student)}
    return student, info


def _drop_program_layers(teacher: nn.Module, program: ExportedModule, k: int, role: str) -> tuple[nn.Module, dict]:
    """drop_layers for a torch.export program: the stack from the graph's module paths, the graph cut."""
    found = layers_pt2.find_stack(program.program)
    if found is None:
        raise CompressError(f"--student layers:{k} needs a stack of encoder layers (at least 2 blocks of one type at "
                            f"numbered module paths, such as encoder.layer.0, encoder.layer.1), and the {role} "
                            f"program has none; use {ALTERNATIVES}")
    name, indices = found
    n = len(indices)
    kept = _kept(k, n, name, role)
    try:
        cut = layers_pt2.drop_blocks(program, name, indices, kept)
    except layers_pt2.NoHiddenState as e:
        raise CompressError(f"--student layers:{k}: cannot tell which input of the {role}'s block {e} is its hidden "
                            f"state (one outside input of the shape of its output); use {ALTERNATIVES}") from None
    student: nn.Module = cut
    if isinstance(teacher, Flat):  # the same calling convention as the teacher (several inputs or outputs)
        student = Flat(cut, teacher.input_names, teacher.by_name)
        student.output_names = teacher.output_names
    info = {"kind": "layers", "stack": name, "teacher_layers": n, "kept_layers": [indices[i] for i in kept],
            "parameters_before": count_params(teacher), "parameters_after": count_params(student)}
    return student, info
