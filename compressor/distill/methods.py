"""Each distillation method as a small nn.Module: its trainable parts (regressors, embedding heads)
and the features it needs; the arithmetic is in `losses`. Selected by name via config.METHODS.

The whole objective is `DistillModule`: student + methods, one forward that returns the loss,
so that DistributedDataParallel sees every trainable parameter in one module.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import losses
from .batches import Inputs, pick
from .config import METHODS, DistillConfig
from .features import last_linear, probe, tap


@dataclass
class Batch:
    xs: Inputs  # one tensor per model input
    y: torch.Tensor  # int64, -1 for an unlabelled sample
    idx: torch.Tensor  # row of each sample in the training set (memory banks)
    # the teacher's target (losses.teacher_targets): log-probabilities at T over dim 1 for logits and dense
    # maps, the (ensemble mean) output for embeddings and regressions
    target: torch.Tensor | None = None
    t_feats: dict[str, torch.Tensor] = field(default_factory=dict)  # teacher features (first teacher)


@dataclass
class Setup:
    cfg: DistillConfig
    teacher: nn.Module | None  # the first teacher, to learn feature shapes
    student: nn.Module
    example: torch.Tensor | Inputs  # batch 1 (LoadedModel.example: a tuple for several inputs)
    n_train: int
    kind: str = "logits"  # the distilled output's kind (compressor.core.parity.KINDS)


class Method(nn.Module):
    needs_teacher = True
    kinds: tuple[str, ...] = ("logits",)  # the output kinds this method can distil
    teacher_features: list[str]
    student_features: list[str]

    def __init__(self, setup: Setup) -> None:
        super().__init__()
        self.cfg = setup.cfg
        self.kind = setup.kind
        self.teacher_features, self.student_features = [], []

    def loss(self, b: Batch, logits: torch.Tensor, s_feats: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        """What the manifest records about this method beyond its weight (hidden: the layer mapping)."""
        return {}


class Labels(Method):
    """Hard labels alone (the supervised baseline); with alpha mixing it is plain cross-entropy."""

    needs_teacher = False

    def loss(self, b, logits, s_feats):
        return losses.hard_loss(logits, b.y)


class KD(Method):
    """Match the teacher's output by its kind: Hinton KD on logits, per-pixel KD on dense maps, 1 - cosine on
    embeddings, MSE on regressed values (so that the default method distils any model)."""

    kinds = ("logits", "dense", "embedding", "regression")

    def loss(self, b, logits, s_feats):
        if self.kind == "dense":
            return losses.dense_kd_loss(logits, b.target, self.cfg.temperature)
        if self.kind == "embedding":
            return losses.cosine_loss(logits, b.target)
        if self.kind == "regression":
            return losses.mse_loss(logits, b.target)
        return losses.kd_loss(logits, b.target, self.cfg.temperature)


class Cosine(Method):
    kinds = ("embedding",)

    def loss(self, b, logits, s_feats):
        return losses.cosine_loss(logits, b.target)


class MSE(Method):
    kinds = ("embedding", "regression")

    def loss(self, b, logits, s_feats):
        return losses.mse_loss(logits, b.target)


class SmoothL1(Method):
    kinds = ("embedding", "regression")

    def loss(self, b, logits, s_feats):
        return losses.smooth_l1_loss(logits, b.target)


class DKD(Method):
    def loss(self, b, logits, s_feats):
        # unlabelled samples take the teacher's top class as their target class
        target = torch.where(b.y >= 0, b.y, b.target.argmax(1))
        return losses.dkd_loss(logits, b.target, target, self.cfg.temperature,
                               self.cfg.dkd_alpha, self.cfg.dkd_beta)


def _regressor(s_shape: torch.Size, t_shape: torch.Size) -> nn.Module:
    """FitNets' learned regressor from the student's feature to the teacher's: 1x1 conv or linear."""
    if len(s_shape) == 4 and len(t_shape) == 4:
        return nn.Conv2d(s_shape[1], t_shape[1], 1, bias=False)
    if len(s_shape) == len(t_shape):
        return nn.Linear(s_shape[-1], t_shape[-1], bias=False)
    from ..core.errors import CompressError

    raise CompressError(f"hint layers have different ranks: student {tuple(s_shape)} vs teacher {tuple(t_shape)}; "
                        "pair layers of the same kind (conv with conv, linear with linear)")


class Hint(Method):
    kinds = ("logits", "dense", "embedding", "regression")  # features, whatever the output

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.pairs = [tuple(h.split(":", 1)) for h in self.cfg.hints]
        self.teacher_features = [t for t, _ in self.pairs]
        self.student_features = [s for _, s in self.pairs]
        t_shapes = probe(setup.teacher, setup.example, self.teacher_features, "teacher")
        s_shapes = probe(setup.student, setup.example, self.student_features, "student")
        self.regressors = nn.ModuleList(_regressor(s_shapes[s], t_shapes[t]) for t, s in self.pairs)

    def loss(self, b, logits, s_feats):
        parts = [losses.hint_loss(reg(s_feats[s]), b.t_feats[t]) for reg, (t, s) in zip(self.regressors, self.pairs)]
        return torch.stack(parts).mean()


class CRD(Method):
    """Contrastive representation distillation with memory banks of both embeddings as negatives."""

    kinds = ("logits", "embedding")  # the penultimate feature: the input of a last nn.Linear

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.t_feat = last_linear(setup.teacher, "teacher") + "@in"
        self.s_feat = last_linear(setup.student, "student") + "@in"
        self.teacher_features, self.student_features = [self.t_feat], [self.s_feat]
        t_dim = probe(setup.teacher, setup.example, [self.t_feat], "teacher")[self.t_feat].numel()
        s_dim = probe(setup.student, setup.example, [self.s_feat], "student")[self.s_feat].numel()
        d = self.cfg.crd_dim
        self.embed_s, self.embed_t = nn.Linear(s_dim, d), nn.Linear(t_dim, d)
        self.register_buffer("mem_s", F.normalize(torch.randn(setup.n_train, d), dim=1))
        self.register_buffer("mem_t", F.normalize(torch.randn(setup.n_train, d), dim=1))

    def loss(self, b, logits, s_feats):
        from .distributed import gather_rows

        cfg = self.cfg
        s = F.normalize(self.embed_s(s_feats[self.s_feat].flatten(1)), dim=1)
        t = F.normalize(self.embed_t(b.t_feats[self.t_feat].flatten(1).float()), dim=1)
        neg = torch.randint(0, len(self.mem_s), (len(s), cfg.crd_negatives))
        loss = (losses.contrastive_loss(s, t, self.mem_t[neg], cfg.crd_temperature)
                + losses.contrastive_loss(t, s, self.mem_s[neg], cfg.crd_temperature))
        with torch.no_grad():  # momentum update, with every rank's samples so that the banks stay equal
            idx, es, et = gather_rows(b.idx), gather_rows(s.detach()), gather_rows(t.detach())
            m = cfg.crd_momentum
            self.mem_s[idx] = F.normalize(m * self.mem_s[idx] + (1 - m) * es, dim=1)
            self.mem_t[idx] = F.normalize(m * self.mem_t[idx] + (1 - m) * et, dim=1)
        return loss


def method_class(name: str) -> type[Method]:
    mod_name, _, cls_name = METHODS.get(name).partition(":")
    return getattr(importlib.import_module(mod_name), cls_name)


def check_kind(methods: tuple[str, ...], kind: str) -> None:
    """A method that cannot distil this output kind is a one-line error naming those that can."""
    for name in methods:
        if kind not in method_class(name).kinds:
            fits = [n for n in METHODS.names() if kind in method_class(n).kinds]
            from ..core.errors import CompressError

            raise CompressError(f"method {name!r} does not distil a {kind} output; for {kind} outputs choose from: "
                                f"{', '.join(fits)}")


def build(setup: Setup) -> dict[str, Method]:
    check_kind(setup.cfg.methods, setup.kind)
    return {name: method_class(name)(setup) for name in setup.cfg.methods}


class DistillModule(nn.Module):
    """Student + methods; forward(batch) -> (loss, student logits)."""

    def __init__(self, student: nn.Module, methods: dict[str, Method], cfg: DistillConfig, labelled: bool,
                 output: int = 0) -> None:
        super().__init__()
        self.student = student
        self.output = output  # which of the student's outputs is distilled (batches.choose_output)
        self.methods = nn.ModuleDict(methods)
        self.weights = cfg.method_weights()
        # without any labels the teacher is the only target: the hard-label share goes to distillation
        self.alpha = cfg.alpha if labelled else 0.0
        self.student_features = sorted({f for m in methods.values() for f in m.student_features})

    @property
    def teacher_features(self) -> list[str]:
        return sorted({f for m in self.methods.values() for f in m.teacher_features})

    @property
    def needs_teacher(self) -> bool:
        return any(m.needs_teacher for m in self.methods.values())

    def forward(self, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        with tap(self.student, self.student_features, "student") as s_feats:
            logits = pick(self.student(*b.xs), self.output)
        distil = sum(self.weights[n] * m.loss(b, logits, s_feats) for n, m in self.methods.items())
        hard = losses.hard_loss(logits, b.y) if self.alpha > 0 else 0.0
        return self.alpha * hard + (1 - self.alpha) * distil, logits
