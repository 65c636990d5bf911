"""Hidden-state alignment of the encoder blocks (`--method kd,hidden`), as DistilBERT and TinyBERT do.

The teacher's and the student's block stacks are found as for `--student layers:K` (layers.find_stack), and
student block j learns the output hidden state of teacher block `evenly_spaced(N, K)[j]`: for a layers:K
student exactly the block it was copied from (layers.drop_layers keeps those), for a student file with K
blocks the same uniform mapping (TinyBERT's), for K = N block by block. The loss is the MSE between the
blocks' outputs, averaged over the pairs. MSE rather than DistilBERT's cosine: it matches the magnitude too,
which the next (kept) block was trained on; the output's direction is already matched by kd. Equal widths
compare directly; a narrower student goes through a learned linear projection (FitNets' regressor).

The features are read by forward hooks (features.tap); a .pt2 program runs as one flat graph where no block's
hook fires, so it is refused in one line.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.errors import CompressError
from ..core.signature import Flat
from ..pt2 import ExportedModule
from . import losses
from .features import probe, tap
from .layers import evenly_spaced, find_stack
from .methods import Method, Setup, _regressor


def _refuse_program(model: nn.Module, role: str) -> None:
    inner = model.inner if isinstance(model, Flat) else model
    if isinstance(inner, (ExportedModule, torch.jit.ScriptModule)):
        raise CompressError(f"method 'hidden' reads each encoder block's output through forward hooks, which do not "
                            f"run inside the {role}'s TorchScript/.pt2 program; give the teacher as a state_dict with "
                            "--arch (or a pickled module with --trust-model), or use --method kd alone")


def _stack(model: nn.Module, name: str | None, role: str) -> tuple[str, nn.ModuleList]:
    # a layers:1 student has a one-block stack, which find_stack (2 blocks or more) does not see: try the
    # teacher's stack name first, the student being a copy of the teacher
    if name is not None:
        try:
            m = model.get_submodule(name)
        except AttributeError:
            m = None
        if isinstance(m, nn.ModuleList) and len(m) >= 1:
            return name, m
    found = find_stack(model)
    if found is None:
        raise CompressError(f"method 'hidden' needs a stack of encoder blocks (an nn.ModuleList of blocks of one "
                            f"type) in the {role}, and it has none; use --method kd, or hint with named layers")
    return found


def layer_pairs(teacher: nn.Module, student: nn.Module) -> list[tuple[str, str]]:
    """(teacher block, student block) module names: student block j with teacher block evenly_spaced(N, K)[j]."""
    _refuse_program(teacher, "teacher")
    _refuse_program(student, "student")
    t_name, t_stack = _stack(teacher, None, "teacher")
    s_name, s_stack = _stack(student, t_name, "student")
    n, k = len(t_stack), len(s_stack)
    if k > n:
        raise CompressError(f"method 'hidden': the student has {k} blocks in {s_name}, more than the teacher's {n} "
                            f"in {t_name}; it maps each student block to one teacher block")
    kept = range(n) if k == n else evenly_spaced(n, k)
    return [(f"{t_name}.{i}", f"{s_name}.{j}") for j, i in enumerate(kept)]


def hidden_gap(student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> float:
    """Mean over the mapped block pairs of the MSE between the student's and the teacher's hidden states on x."""
    pairs = layer_pairs(teacher, student)
    with torch.no_grad(), tap(teacher, [t for t, _ in pairs], "teacher") as tf, \
            tap(student, [s for _, s in pairs], "student") as sf:
        teacher.eval()(x)
        student.eval()(x)
        return float(torch.stack([torch.mean((sf[s] - tf[t]) ** 2) for t, s in pairs]).mean())


class Hidden(Method):
    kinds = ("logits", "dense", "embedding", "regression")  # features, whatever the output

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.pairs = layer_pairs(setup.teacher, setup.student)
        self.teacher_features = [t for t, _ in self.pairs]
        self.student_features = [s for _, s in self.pairs]
        t_shapes = probe(setup.teacher, setup.example, self.teacher_features, "teacher")
        s_shapes = probe(setup.student, setup.example, self.student_features, "student")
        self.projections = nn.ModuleList(
            nn.Identity() if s_shapes[s] == t_shapes[t] else _regressor(s_shapes[s], t_shapes[t])
            for t, s in self.pairs)

    def loss(self, b, logits, s_feats):
        parts = [losses.mse_loss(proj(s_feats[s]), b.t_feats[t])
                 for proj, (t, s) in zip(self.projections, self.pairs)]
        return torch.stack(parts).mean()

    def describe(self) -> dict[str, Any]:
        # named inside the user's model, not the wrapper of a model with several inputs (core.signature.Flat)
        return {"loss": "mse", "projected": any(not isinstance(p, nn.Identity) for p in self.projections),
                "pairs": [{"teacher": t.removeprefix("inner."), "student": s.removeprefix("inner.")}
                          for t, s in self.pairs]}
