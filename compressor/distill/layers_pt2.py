"""Layer dropping inside a torch.export program (.pt2), for `--student layers:K` (compressor/distill/layers.py).

A program has no nn.ModuleList to shorten: its module is one flat graph of ATen ops (`ep.module()`). But every
node records the modules it ran in (`meta["nn_module_stack"]`: path and type of each enclosing module), so the
repeated blocks are found from those paths, generically: a prefix followed by an integer index
(`encoder.layer.0` .. `encoder.layer.11`, `layers.0` ..), the prefix with the most indices, all of one type.

A dropped block is cut out of the graph: the uses of its output hidden state are given its input hidden state
(the block's outside input of the same shape and dtype), as if the block were the identity, the nodes and
weights nothing uses any more are removed, and the kept blocks are renumbered 0..K-1. The student is the same
kind of module as the teacher (an ExportedModule around a GraphModule): it runs, trains (plain autograd through
ATen ops; dropout stays as exported, off in an eval-mode export) and exports like the teacher did.
"""
from __future__ import annotations

import copy
import re
import warnings
from collections import defaultdict

import torch
from torch import fx, nn

from ..pt2 import ExportedModule


class NoHiddenState(Exception):
    """A dropped block whose incoming hidden state cannot be told apart; the message is its module path."""


_INDEXED = re.compile(r"^(?:(.*)\.)?(\d+)$")  # "encoder.layer.11" -> ("encoder.layer", "11"); "3" -> (None, "3")


def _paths(node: fx.Node) -> list[tuple[str, str]]:
    """(path, type name) of every module the node ran in, outermost first."""
    return [(str(p), str(t)) for p, t in (node.meta.get("nn_module_stack") or {}).values()]


def _block_path(prefix: str, index: int) -> str:
    return f"{prefix}.{index}" if prefix else str(index)


def find_stack(gm: fx.GraphModule) -> tuple[str, list[int]] | None:
    """The program's block stack: (module path prefix, its indices in order), for the prefix with the most
    integer-indexed blocks (at least 2) that all have one module type; the outermost on ties. None without one."""
    seen: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for node in gm.graph.nodes:
        for path, kind in _paths(node):
            m = _INDEXED.match(path)
            if m:
                seen[m.group(1) or ""][int(m.group(2))].add(kind)
    best: tuple[tuple[int, int], str] | None = None
    for prefix, blocks in seen.items():
        if len(blocks) < 2 or len(set().union(*blocks.values())) != 1:
            continue  # a Sequential of mixed layers (Linear, ReLU, ...) is not a stack of blocks
        rank = (len(blocks), -(prefix.count(".") + 1 if prefix else 0))
        if best is None or rank > best[0]:
            best = (rank, prefix)
    if best is None:
        return None
    return best[1], sorted(seen[best[1]])


def _members(gm: fx.GraphModule, prefix: str, indices: list[int]) -> dict[int, set[fx.Node]]:
    """The computation nodes of each block (weights, read by get_attr nodes, are not members: they go when
    nothing reads them)."""
    owner = {_block_path(prefix, i): i for i in indices}
    members: dict[int, set[fx.Node]] = {i: set() for i in indices}
    for node in gm.graph.nodes:
        if node.op in ("call_function", "call_method", "call_module"):
            hit = next((owner[p] for p, _ in _paths(node) if p in owner), None)
            if hit is not None:
                members[hit].add(node)
    return members


def _signature(node: fx.Node) -> tuple | None:
    """Shape (symbolic sizes by name: a dynamic batch matches itself) and dtype of a tensor node; None otherwise."""
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        return None
    return tuple(str(d) for d in val.shape), val.dtype


def hidden_state(block: set[fx.Node], previous: set[fx.Node]) -> tuple[fx.Node, fx.Node] | None:
    """(incoming, outgoing) hidden state of a block: an output used outside the block, and an input from outside
    of the same shape and dtype. When several inputs fit (a mask of the hidden's shape, say), the one the
    previous block made. None when that does not settle it."""
    outs = [n for n in block if _signature(n) is not None and any(u not in block for u in n.users)]
    ins = {a for n in block for a in n.all_input_nodes if a not in block and a.op != "get_attr"}
    pairs = [(i, o) for o in outs for i in ins if _signature(i) == _signature(o)]
    if len(pairs) > 1:
        pairs = [(i, o) for i, o in pairs if i in previous]
    return pairs[0] if len(pairs) == 1 else None


def _rename(path: str, prefix: str, mapping: dict[int, int]) -> str:
    """`prefix.OLD[.rest]` -> `prefix.NEW[.rest]`; other paths unchanged."""
    head = f"{prefix}." if prefix else ""
    if not path.startswith(head):
        return path
    index, dot, rest = path[len(head):].partition(".")
    if not index.isdigit() or int(index) not in mapping:
        return path
    return f"{head}{mapping[int(index)]}{dot}{rest}"


def _remove_unused_weights(gm: fx.GraphModule) -> None:
    """Parameters and buffers no get_attr node reads, then the modules left empty."""
    read = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    named = list(gm.named_parameters(remove_duplicate=False)) + list(gm.named_buffers(remove_duplicate=False))
    for name, _ in named:
        if name not in read:
            owner, _, leaf = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, leaf)
    gm.delete_all_unused_submodules()


def _renumber(gm: fx.GraphModule, prefix: str, mapping: dict[int, int]) -> None:
    """Kept blocks as 0..K-1, in the module tree, the weights' get_attr targets and the nodes' module paths
    (so that the student reads like a K-block model, and its stack is found again the same way)."""
    container = gm.get_submodule(prefix) if prefix else gm
    moved = {old: container._modules.pop(str(old)) for old in mapping if str(old) in container._modules}
    for old, new in sorted(mapping.items(), key=lambda kv: kv[1]):
        if old in moved:
            container._modules[str(new)] = moved[old]
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            node.target = _rename(node.target, prefix, mapping)
        stack = node.meta.get("nn_module_stack")
        if stack:
            node.meta["nn_module_stack"] = {k: (_rename(str(p), prefix, mapping), t) for k, (p, t) in stack.items()}


def drop_blocks(program: ExportedModule, prefix: str, indices: list[int], kept: tuple[int, ...]) -> ExportedModule:
    """A copy of `program` that runs only the blocks at positions `kept` of the stack `prefix.<indices>`.

    Raises NoHiddenState naming a block whose hidden state cannot be told apart (the caller words it)."""
    with warnings.catch_warnings():  # torch's own deprecation notice, raised copying the program's input spec
        warnings.simplefilter("ignore", FutureWarning)
        gm = copy.deepcopy(program.program)  # the teacher stays whole
    members = _members(gm, prefix, indices)
    pairs = {}
    for pos, index in enumerate(indices):  # read on the untouched graph: inputs are rerouted below
        if pos not in kept:
            pair = hidden_state(members[index], members[indices[pos - 1]] if pos else set())
            if pair is None:
                raise NoHiddenState(_block_path(prefix, index))
            pairs[index] = pair
    dropped: set[fx.Node] = set()
    replaced: dict[fx.Node, fx.Node] = {}
    for index, (incoming, outgoing) in pairs.items():  # in stack order: a run of dropped blocks chains
        source = replaced.get(incoming, incoming)
        block = members[index]
        outgoing.replace_all_uses_with(source, delete_user_cb=lambda user, block=block: user not in block)
        replaced[outgoing] = source
        dropped |= block
    # a dropped block's checks (_assert_tensor_metadata, ...) count as side effects: they must not keep it alive
    gm.graph.eliminate_dead_code(is_impure_node=lambda n: n not in dropped and n.is_impure())
    _remove_unused_weights(gm)
    _renumber(gm, prefix, {indices[p]: new for new, p in enumerate(kept)})
    gm.graph.lint()
    gm.recompile()
    student = ExportedModule(gm, program.static_batch, getattr(program.program, "in_names", None),
                             getattr(program.program, "keyword_only", False))
    first = next((n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"), None)
    if isinstance(first, torch.Tensor):  # what compressor.loading.finish reads of a module built in Python
        student.input_dtype = first.dtype
    return student


@torch.no_grad()
def reinitialise(module: nn.Module) -> nn.Module:
    """Random weights for a program's student (`--student-init random`): its layers are ATen calls, with no
    reset_parameters to call, so each weight is drawn anew with its own mean and spread (a LayerNorm's ones stay
    ones, zero biases stay zero), a generic stand-in for each layer's own initialisation."""
    for p in module.parameters():
        if p.is_floating_point() and p.numel() > 1:
            p.normal_(float(p.mean()), float(p.std()))
    return module
