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


# attention blocks whose heads torch-pruning can remove whole: separate q/k/v projections (Hugging Face BERT-like
# `query/key/value`, Llama/ViT-like `q_proj/k_proj/v_proj`), a head count and a per-head width attribute
_QKV = (("query", "key", "value"), ("q_proj", "k_proj", "v_proj"))
_HEADS = ("num_attention_heads", "num_heads")
_HEAD_SIZE = ("attention_head_size", "head_dim", "head_size")
_LAYERS_HINT = "use --student layers:K (drop whole layers) or give your own --student FILE"


def _attr(m: nn.Module, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if isinstance(getattr(m, n, None), int)), None)


def _attention(model: nn.Module) -> list[tuple[nn.Module, tuple[nn.Linear, nn.Linear, nn.Linear], str, str]]:
    """The attention blocks (module, (q, k, v), head-count attribute, head-size attribute); a CompressError, in
    one line, for attention torch-pruning cannot cut into whole heads while keeping the hidden size."""
    found = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
            raise CompressError(f"--student auto cannot prune torch's {type(m).__name__} ({name}) by whole heads "
                                f"(torch-pruning only narrows its embedding width); {_LAYERS_HINT}")
        heads = _attr(m, _HEADS)
        if heads is None:
            continue
        qkv = next((tuple(getattr(m, n, None) for n in names) for names in _QKV
                    if all(isinstance(getattr(m, n, None), nn.Linear) for n in names)), None)
        size = _attr(m, _HEAD_SIZE)
        if qkv is None or size is None:
            raise CompressError(f"--student auto cannot prune the attention {type(m).__name__} ({name}) by whole "
                                f"heads (no separate query/key/value projections); {_LAYERS_HINT}")
        n, d = getattr(m, heads), getattr(m, size)
        if any(lin.out_features != n * d for lin in qkv) or getattr(m, "num_key_value_heads", n) != n:
            raise CompressError(f"--student auto cannot prune the attention {type(m).__name__} ({name}) by whole "
                                f"heads (its projections are not {n} heads of {d}); {_LAYERS_HINT}")
        found.append((m, qkv, heads, size))
    return found


def _residual_writers(model: nn.Module, example, attention) -> list[nn.Module]:
    """The layers that write the residual stream (attention output projections, MLP down projections): their
    output width is the hidden size, which the student keeps. Found as the out-channel layers of the group
    that removing one input channel of the first query projection would touch."""
    import torch_pruning as tp

    from .batches import args

    graph = tp.DependencyGraph().build_dependency(model, example_inputs=args(example))
    group = graph.get_pruning_group(attention[0][1][0], tp.prune_linear_in_channels, idxs=[0])
    return [dep.target.module for dep, _ in group
            if graph.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module, nn.Linear)]


def _head_ratio(n: int, ratio: float) -> float:
    """The head-pruning ratio at which torch-pruning (which removes ceil(ratio * n) heads) removes round(ratio * n)
    heads but never the last one (it would skip that layer and miscount its heads)."""
    k = min(n - 1, int(ratio * n + 0.5))
    return (k - 0.5) / n if k > 0 else 0.0


def _prune(model: nn.Module, example: torch.Tensor, channel_ratio: float,
           info: dict | None = None) -> nn.Module:
    import torch_pruning as tp

    from .batches import args

    pruned = copy.deepcopy(model).eval()
    # the output layer's channels are the classes (or a dense map's classes, an embedding's values): never prune
    ignored = output_layers(pruned, example)
    attention = _attention(pruned)
    extra: dict = {}
    if attention:
        # a transformer, as torch-pruning prunes Hugging Face BERT: keep the hidden size (embeddings, residual
        # stream, LayerNorms), remove whole heads (each head keeps its width, so the attention's reshape into
        # heads still fits) and narrow the MLPs
        writers = _residual_writers(pruned, example, attention)
        ignored = list({id(m): m for m in ignored + writers}.values())
        heads = {lin: getattr(m, h) for m, qkv, h, _ in attention for lin in qkv}
        extra = {"num_heads": heads, "prune_num_heads": True, "prune_head_dims": False,
                 "head_pruning_ratio_dict": {m: _head_ratio(getattr(m, h), channel_ratio)
                                             for m, _, h, _ in attention}}
    pruner = tp.pruner.BasePruner(pruned, args(example), importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=channel_ratio, ignored_layers=ignored, **extra)
    pruner.step()
    if attention:
        _update_attention(pruned, attention, pruner, writers, info)
    for p in pruned.parameters():  # plain strides: DDP's gradient buckets expect them
        p.data = p.data.clone(memory_format=torch.contiguous_format)
    return pruned


def _update_attention(model: nn.Module, attention, pruner, writers: list[nn.Module], info: dict | None) -> None:
    """Tell each attention block how many heads it has left, and its config (when all layers agree; the hidden
    size is unchanged) the heads and the MLP width, so the model's own reshapes and a rebuild from it fit."""
    kept = []
    for m, qkv, h, d in attention:
        n = pruner.num_heads[qkv[0]]
        if any(lin.out_features != n * getattr(m, d) for lin in qkv):  # torch-pruning cut into a head
            raise CompressError(f"torch-pruning did not remove whole heads from {type(m).__name__}; {_LAYERS_HINT}")
        setattr(m, h, n)
        if isinstance(getattr(m, "all_head_size", None), int):
            m.all_head_size = qkv[0].out_features
        kept.append(n)
    import torch_pruning as tp

    graph = pruner.DG  # the attention output projections read the heads; the other writers are MLPs
    attn_out = {id(dep.target.module) for _, qkv, _, _ in attention
                for dep, _ in graph.get_pruning_group(qkv[0], tp.prune_linear_out_channels, idxs=[0])
                if graph.is_in_channel_pruning_fn(dep.handler)}
    ids = {id(w) for w in writers}
    mlp = [m.in_features for m in model.modules() if id(m) in ids and id(m) not in attn_out]
    configs = {id(c): c for m, *_ in attention if (c := getattr(m, "config", None)) is not None}
    for c in configs.values():
        if len(set(kept)) == 1 and isinstance(getattr(c, "num_attention_heads", None), int):
            c.num_attention_heads = kept[0]
        if mlp and len(set(mlp)) == 1 and isinstance(getattr(c, "intermediate_size", None), int):
            c.intermediate_size = mlp[0]
    if info is not None:
        info.clear()
        info.update({"heads_per_layer": kept, "head_size": getattr(attention[0][0], attention[0][3]),
                     "mlp_width_per_layer": mlp, "hidden_size_kept": attention[0][1][0].in_features})


def auto_student(teacher: nn.Module, example: torch.Tensor, ratio: float, ratio_of: str = "params",
                 info: dict | None = None) -> nn.Module:
    """The teacher with channels removed until at most `ratio` of its parameters (or MACs) remain. A transformer
    keeps its hidden size and loses whole attention heads and MLP width; what was kept goes into `info`."""
    measure = count_params if ratio_of == "params" else (lambda m: count_macs(m, example))
    full = measure(teacher)
    if ratio >= 1.0:
        return copy.deepcopy(teacher)
    layout: dict = {}
    try:
        # parameters fall roughly as (1 - channel_ratio)^2 (MACs too): guess, then bisect near the guess
        guess = 1.0 - ratio ** 0.5
        lo, hi = max(0.0, guess - 0.2), min(0.99, guess + 0.2)
        found: dict = {}
        best = _prune(teacher, example, hi, found)
        if measure(best) > ratio * full:
            lo, hi = hi, 0.99
            found = {}
            best = _prune(teacher, example, hi, found)
        layout = found
        for _ in range(7):  # ~0.003 resolution on the channel ratio; each prune rebuilds the graph
            mid = (lo + hi) / 2
            found = {}
            cand = _prune(teacher, example, mid, found)
            if measure(cand) <= ratio * full:
                best, hi, layout = cand, mid, found
            else:
                lo = mid
    except CompressError:
        raise
    except Exception as e:  # noqa: BLE001 - torch-pruning fails in many ways on unusual graphs
        raise CompressError(f"torch-pruning could not derive a student from this teacher ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:160]}); give your own --student FILE or "
                            "use --student layers:K") from None
    if measure(best) > ratio * full:
        raise CompressError(f"pruning cannot bring the teacher down to {ratio:.0%} of its {ratio_of}; "
                            "choose a larger --ratio or give your own --student FILE")
    if info is not None and layout:
        info.update(layout)
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
