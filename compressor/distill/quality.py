"""How close a student is to its teacher, by output kind: the validation score that picks the best epoch, and
the check after distillation that no student is handed on at chance level without a warning.

    logits      top-1 agreement with the teacher (accuracy on labels, when the data has them, for selection)
    dense       agreement of the per-pixel arg-max maps (compressor.core.parity.agreement)
    embedding   mean cosine similarity with the teacher's embedding
    regression  mean squared error to the teacher's values (selection: minus it, higher is better)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.parity import agreement

METRIC = {"logits": "top-1 agreement", "dense": "pixel agreement", "embedding": "mean cosine",
          "regression": "mean squared error"}


def reference(outputs: list[np.ndarray], kind: str) -> np.ndarray:
    """The (ensemble) teacher's answer to compare a student with: mean class probabilities (over dim 1) for
    logits and dense maps, the mean output for embeddings and regressions."""
    if kind in ("logits", "dense"):
        return np.mean([torch.softmax(torch.from_numpy(o).double(), 1).numpy() for o in outputs], axis=0)
    return np.mean(outputs, axis=0)


def score(kind: str, out: np.ndarray, y: np.ndarray, ref: np.ndarray | None) -> tuple[float, float]:
    """(score, loss) of a student's validation outputs; a higher score is better and the loss breaks ties.

    logits: accuracy on `y` (labels, or the teacher's top-1 when there are none) and cross-entropy;
    the other kinds against the teacher's `ref`."""
    if kind == "logits" or ref is None:
        if not len(y):
            return float("nan"), float("nan")
        logits, target = torch.from_numpy(out), torch.from_numpy(y)
        return float((logits.argmax(1) == target).float().mean()), float(F.cross_entropy(logits, target))
    if not len(ref):
        return float("nan"), float("nan")
    if kind == "dense":  # per-pixel cross-entropy to the teacher's arg-max map breaks ties
        value, _ = agreement(out, ref, "dense")
        return value, float(F.cross_entropy(torch.from_numpy(out), torch.from_numpy(ref.argmax(1))))
    mse = float(np.mean((out.astype(np.float64) - ref) ** 2))
    if kind == "embedding":
        return agreement(out, ref, "embedding")[0], mse
    return -mse, mse


def chance(kind: str, ref: np.ndarray) -> float:
    """The metric's value for a student that has learnt nothing from its input.

    logits, dense: max(1.5 / classes, 0.05), a little above guessing; embedding: the mean cosine of the
    teacher's mean embedding (one constant output) with the teacher; regression: the MSE of that constant
    (the teacher's variance)."""
    if kind in ("logits", "dense"):
        return max(1.5 / ref.shape[1], 0.05)
    const = np.broadcast_to(ref.mean(0, keepdims=True), ref.shape)
    if kind == "embedding":
        return agreement(const, ref, "embedding")[0]
    return float(np.mean((const - ref) ** 2))


def check(kind: str, out: np.ndarray, ref: np.ndarray, teacher_out: np.ndarray) -> dict[str, Any]:
    """The student's outputs `out` on the validation split against the teacher's: the kind's metric, its
    chance level, whether the student is at or past it ("collapsed"), and both models' largest |output|
    (a student whose outputs dwarf the teacher's has usually not learnt its scale)."""
    if kind == "regression":
        value = float(np.mean((out.astype(np.float64) - ref) ** 2))
    else:
        value = agreement(out, ref, kind)[0]
    level = chance(kind, ref)
    collapsed = value >= level if kind == "regression" else value <= level
    c = {"metric": METRIC[kind], "value": round(value, 6), "chance_level": round(level, 6),
         "collapsed": bool(collapsed), "samples": len(out),
         "student_max_abs": round(float(np.abs(out).max()), 6),
         "teacher_max_abs": round(float(np.abs(teacher_out).max()), 6)}
    if kind in ("logits", "dense"):
        # an untrained teacher's classes are nearly tied: its top-1 is noise no student can learn (issue 15)
        top = float(ref.max(1).mean())
        c |= {"teacher_top1_probability": round(top, 6), "teacher_nearly_uniform": top <= 1.5 / ref.shape[1]}
    return c


def warning(c: dict[str, Any]) -> str:
    """One line for a collapsed student: what was measured, and what to try."""
    value = f"{c['value']:.1%}" if c["metric"].endswith("agreement") else f"{c['value']:.4g}"
    level = f"{c['chance_level']:.1%}" if c["metric"].endswith("agreement") else f"{c['chance_level']:.4g}"
    head = (f"warning: the student is at chance level: its {c['metric']} with the teacher on the validation split "
            f"is {value} (chance {level}; largest output {c['student_max_abs']:.3g} vs the teacher's "
            f"{c['teacher_max_abs']:.3g}); ")
    if c.get("teacher_nearly_uniform"):
        return head + (f"the teacher's classes are nearly tied (mean top-1 probability {c['teacher_top1_probability']:.2%}"
                       "), so its top-1 is noise: distil a trained teacher")
    return head + ("check that the teacher is trained (its outputs must depend on the input), then try more "
                   "--epochs, more data, a larger --ratio or --student-init teacher")


KEPT = {"logits": "top-1 agreement", "dense": "mean IoU", "embedding": "mean cosine",
        "regression": "explained variance"}


def kept(kind: str, out: np.ndarray, ref: np.ndarray, y: np.ndarray, labelled: bool) -> tuple[float, str]:
    """How much of the teacher the student keeps, on one scale for --min-kept (1.0: all), and its name.

    logits with labels: the student's accuracy over the (ensemble) teacher's; without labels, top-1 agreement;
    dense: mean IoU of the arg-max maps; embedding: mean cosine; regression: the share of the teacher's variance
    the student explains, 1 - MSE / variance (0 for a constant output, negative below that)."""
    if kind == "logits" and labelled and len(y):
        teacher = float((ref.argmax(1) == y).mean())
        student = float((out.argmax(1) == y).mean())
        return (student / teacher if teacher > 0 else float(student >= teacher)), "accuracy kept"
    if kind == "dense":
        return agreement(out, ref, "dense")[1]["mean_iou"], KEPT[kind]
    if kind == "regression":
        var = float(np.mean((ref - ref.mean(0, keepdims=True)) ** 2))
        mse = float(np.mean((out.astype(np.float64) - ref) ** 2))
        return (1.0 - mse / var if var > 0 else float(mse == 0)), KEPT[kind]
    return agreement(out, ref, kind)[0], KEPT[kind]
