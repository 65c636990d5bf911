"""Distillation losses as small pure functions of tensors (no state, no modules).

Soft targets are passed as teacher log-probabilities at temperature T, so that one teacher
and an ensemble (whose mean is not a softmax of any logits) go through the same losses.
Which target a loss gets follows the output kind (`teacher_targets`): class scores (logits, and
dense per-pixel maps) become log-probabilities; embeddings and regressed values stay values.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def soft_targets(teacher_logits: list[torch.Tensor], temperature: float, mean: str = "arithmetic") -> torch.Tensor:
    """Log-probabilities of the (ensemble) teacher at temperature T.

    arithmetic: log of the mean of the members' probabilities (a mixture);
    geometric:  the normalised product of experts, log_softmax of the mean log-probability.
    """
    logps = torch.stack([F.log_softmax(t.float() / temperature, dim=1) for t in teacher_logits])
    if mean == "arithmetic":
        return torch.logsumexp(logps, dim=0) - math.log(len(teacher_logits))
    if mean == "geometric":
        return F.log_softmax(logps.mean(dim=0), dim=1)
    raise ValueError(f"unknown ensemble mean {mean!r}")


def teacher_targets(outputs: list[torch.Tensor], kind: str, temperature: float,
                    mean: str = "arithmetic") -> torch.Tensor:
    """What the student learns from, per output kind: log-probabilities at T over the class axis (dim 1) for
    logits and dense maps; the members' mean output for embeddings and regressions."""
    if kind in ("logits", "dense"):
        return soft_targets(outputs, temperature, mean)
    return torch.stack([t.float() for t in outputs]).mean(0)


def hard_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over labelled samples only (label -1 marks an unlabelled sample); 0 if none."""
    mask = labels >= 0
    if not bool(mask.any()):
        return student_logits.sum() * 0.0  # keeps the graph connected (DDP needs every parameter used)
    return F.cross_entropy(student_logits[mask], labels[mask])


def kd_loss(student_logits: torch.Tensor, target_logp: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. 2015: KL(teacher_T || student_T) * T^2, so gradients keep their scale as T changes."""
    s = F.log_softmax(student_logits / temperature, dim=1)
    return F.kl_div(s, target_logp, log_target=True, reduction="batchmean") * temperature ** 2


def dense_kd_loss(student_maps: torch.Tensor, target_logp: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-pixel KD on (N, C, H, W) maps: KL(teacher_T || student_T) over the channel axis at every pixel,
    averaged over pixels, * T^2 (as kd_loss is for one prediction per sample)."""
    s = F.log_softmax(student_maps.float() / temperature, dim=1)
    kl = (target_logp.exp() * (target_logp - s)).sum(1)
    return kl.mean() * temperature ** 2


def cosine_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """Embeddings compared by direction: mean of 1 - cos(student, teacher), each sample flattened."""
    cos = F.cosine_similarity(student_emb.flatten(1).float(), teacher_emb.flatten(1).float(), dim=1, eps=1e-8)
    return (1.0 - cos).mean()


def mse_loss(student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """Values matched as they are (regressions; an embedding's magnitude too)."""
    return F.mse_loss(student_out.float(), teacher_out.float())


def smooth_l1_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Huber-like: quadratic within beta of the teacher, linear beyond (outliers in the teacher's values pull less)."""
    return F.smooth_l1_loss(student_out.float(), teacher_out.float(), beta=beta)


def dkd_loss(student_logits: torch.Tensor, target_logp: torch.Tensor, target: torch.Tensor, temperature: float,
             alpha: float = 1.0, beta: float = 8.0) -> torch.Tensor:
    """Decoupled KD (Zhao et al. 2022): alpha * TCKD + beta * NCKD, each scaled by T^2.

    TCKD compares the binary (target, rest) split; NCKD compares the distributions over the
    non-target classes, each renormalised, so the teacher's "dark knowledge" is weighted on its own.
    """
    c = student_logits.shape[1]
    gt = F.one_hot(target, c).bool()
    s_logp = F.log_softmax(student_logits / temperature, dim=1)
    t_logp = target_logp
    # binary target / non-target probabilities, in log space for stability
    s_b = torch.stack([s_logp[gt], torch.logsumexp(s_logp.masked_fill(gt, -torch.inf), dim=1)], dim=1)
    t_b = torch.stack([t_logp[gt], torch.logsumexp(t_logp.masked_fill(gt, -torch.inf), dim=1)], dim=1)
    tckd = F.kl_div(s_b, t_b, log_target=True, reduction="batchmean")
    # non-target distributions: drop the target class and renormalise
    s_nt = F.log_softmax((student_logits / temperature).masked_fill(gt, -1e9), dim=1)
    t_nt = (t_logp - t_b[:, 1:]).masked_fill(gt, -1e9)
    t_nt_p = t_nt.exp().masked_fill(gt, 0.0)
    nckd = (t_nt_p * (t_nt - s_nt)).masked_fill(gt, 0.0).sum(1).mean()
    return (alpha * tckd + beta * nckd) * temperature ** 2


def hint_loss(student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """FitNets: mean squared error between the regressed student feature and the teacher's."""
    if student_feature.shape[2:] != teacher_feature.shape[2:]:
        # different spatial sizes: compare at the smaller one (average pooling keeps the mean activation)
        size = tuple(min(a, b) for a, b in zip(student_feature.shape[2:], teacher_feature.shape[2:]))
        student_feature = F.adaptive_avg_pool2d(student_feature, size)
        teacher_feature = F.adaptive_avg_pool2d(teacher_feature, size)
    return F.mse_loss(student_feature, teacher_feature)


def contrastive_loss(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor,
                     temperature: float) -> torch.Tensor:
    """CRD's objective in its softmax (InfoNCE) form: pick the positive among K memory-bank negatives.

    anchor, positive: (N, D) L2-normalised; negatives: (N, K, D) L2-normalised.
    """
    pos = (anchor * positive).sum(1, keepdim=True)
    neg = torch.bmm(negatives, anchor.unsqueeze(2)).squeeze(2)
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(anchor), dtype=torch.long, device=anchor.device))
