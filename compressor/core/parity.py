"""Parity: an artifact's outputs against the reference (PyTorch's, on the same real inputs).

One owner for how parity is judged. `RULES` is the one table of tolerances: per artifact format,
variant and output kind, the largest absolute difference allowed (relative to the reference's largest
magnitude) and the least agreement. Every exporter, quantizer and benchmark row looks its rule up
here, and `compare` computes the figures for any of them. Changing a tolerance is one line below.

Output kinds and what "agreement" means for each (`agreement`):
    logits      class scores (batch, classes): top-1 agreement
    dense       per-pixel class scores (batch, classes, H, W): agreement of the arg-max maps (and their mIoU)
    embedding   vectors compared by direction: mean cosine similarity (and the smallest)
    regression  values: judged on the absolute difference alone
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import feeds
from .errors import CompressError, ParityError


@dataclass(frozen=True)
class Rule:
    rel_tol: float | None  # max |Δ| / max(1, max |reference|); None: not judged on it (integer variants)
    min_top1: float  # least top-1 agreement with the reference

    def max_abs(self, reference: np.ndarray) -> float | None:
        return None if self.rel_tol is None else self.rel_tol * max(1.0, float(np.abs(reference).max()))


KINDS = ("logits", "dense", "embedding", "regression")
FP32 = Rule(1e-4, 0.99)  # kernels reorder sums: float32 outputs differ by rounding only
FP16 = 1e-2  # float16 keeps ~3 significant digits
MEASURE = Rule(None, 0.0)  # figures recorded, nothing judged (the float model measured beside int8 ones)

# (format, variant, output kind) -> Rule. Output kinds: "logits" (class scores) for now.
# The quantizers' agreement floors are the defaults of their configs; a user's budget overrides them.
RULES: dict[tuple[str, str, str], Rule] = {
    ("onnx", "float32", "logits"): FP32,
    ("onnx", "float16", "logits"): Rule(FP16, 0.99),
    ("onnx", "dynamic-int8", "logits"): Rule(None, 0.99),
    ("onnx", "int8", "logits"): Rule(None, 0.99),
    ("onnx", "int8-web", "logits"): Rule(None, 0.99),
    ("onnx", "qat-int8", "logits"): Rule(None, 0.0),  # QAT retrains: judged on accuracy (quantize/config.py)
    ("onnx", "*", "logits"): Rule(None, 0.98),
    ("tflite", "float32", "logits"): FP32,
    ("tflite", "float16", "logits"): Rule(FP16, 0.98),
    ("tflite", "dynamic-int8", "logits"): Rule(None, 0.95),
    ("tflite", "int8", "logits"): Rule(None, 0.95),
    ("tflite", "qat-int8", "logits"): Rule(None, 0.95),
    ("tflite", "int16x8", "logits"): Rule(None, 0.97),
    ("tfjs", "float32", "logits"): FP32,
    ("tfjs", "float16", "logits"): Rule(FP16, 0.98),
    ("tfjs", "uint16", "logits"): Rule(FP16, 0.98),
    ("tfjs", "uint8", "logits"): Rule(None, 0.95),
    ("onnx-web", "float32", "logits"): FP32,
    ("onnx-web", "int8", "logits"): Rule(None, 0.95),
    # benchmark rows: checked on the timing inputs, which may be random rather than real data, so looser;
    # "file" is a loose artifact given to `compress bench` (judged as float)
    ("bench", "float32", "logits"): Rule(1e-3, 0.99),
    ("bench", "file", "logits"): Rule(1e-3, 0.99),
    ("bench", "*", "logits"): Rule(None, 0.9),
}


def rule(fmt: str, variant: str, kind: str = "logits") -> Rule:
    """The rule for an artifact; "*" rows cover a format's other variants. Kinds without rows of their own
    take the logits row's tolerance, with the kind's own agreement floor (`for_kind`)."""
    for k in dict.fromkeys((kind, "logits")):
        for key in ((fmt, variant, k), (fmt, "*", k)):
            if key in RULES:
                return RULES[key] if k == kind else for_kind(RULES[key], kind)
    known = sorted({f"{f}:{v}" for f, v, _ in RULES})
    raise CompressError(f"no parity rule for {fmt}:{variant} ({kind}); known: {', '.join(known)}")


def for_kind(logits: Rule, kind: str) -> Rule:
    """A logits rule carried over to another output kind."""
    if kind not in KINDS:
        raise CompressError(f"unknown output kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if kind == "embedding":  # float variants keep the direction almost exactly; integer ones roughly
        return Rule(logits.rel_tol, 0.999 if logits.rel_tol is not None else 0.98)
    if kind == "regression":  # no classes to agree on: the values themselves, looser for integer variants
        return Rule(logits.rel_tol if logits.rel_tol is not None else 0.1, 0.0)
    return logits  # dense: the arg-max map agrees pixel by pixel as top-1 does sample by sample


def agreement(outputs: np.ndarray, reference: np.ndarray, kind: str = "logits") -> tuple[float, dict[str, float]]:
    """How far `outputs` give the reference's answers (1.0: all), and the kind's details."""
    out, ref = np.asarray(outputs, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if kind == "dense" and ref.ndim >= 3:
        a, b = out.argmax(1), ref.argmax(1)
        present = np.union1d(np.unique(a), np.unique(b))
        ious = [np.logical_and(a == c, b == c).sum() / np.logical_or(a == c, b == c).sum() for c in present]
        return float((a == b).mean()), {"mean_iou": float(np.mean(ious)) if ious else 1.0}
    if kind == "embedding":
        o, r = out.reshape(len(out), -1), ref.reshape(len(ref), -1)
        norm = np.linalg.norm(o, axis=1) * np.linalg.norm(r, axis=1)
        cos = np.where(norm > 0, (o * r).sum(1) / np.where(norm > 0, norm, 1.0), 1.0)
        return float(cos.mean()), {"min_cosine": float(cos.min()) if cos.size else 1.0}
    if kind == "regression":
        return 1.0, {}
    return float((out.reshape(len(out), -1).argmax(1) == ref.reshape(len(ref), -1).argmax(1)).mean()), {}


def page_rule(model: Rule, kind: str = "logits") -> Rule:
    """A bundle's index.html shows one example: the model's tolerance, and a classifier's top-1 must match
    (other kinds keep the model's own floor: one map or vector is not all-or-nothing)."""
    return Rule(model.rel_tol, 1.0 if kind == "logits" else model.min_top1)


def accuracy_drop_points(reference_accuracy: float | None, accuracy: float | None) -> float | None:
    """Accuracy lost against the reference, in percentage points (None without labels)."""
    if accuracy is None or reference_accuracy is None:
        return None
    return round(100.0 * (reference_accuracy - accuracy), 4)


@dataclass(frozen=True)
class Parity:
    """Outputs of an artifact against the reference on the same real inputs."""

    n_samples: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    max_abs_threshold: float | None  # None: not judged on absolute difference (integer variants)
    min_top1_agreement: float
    accuracy: float | None = None  # on the labelled parity inputs, when labels exist
    reference_accuracy: float | None = None
    runtime: str = ""
    kind: str = "logits"  # the output kind; top1_agreement holds that kind's agreement (module docstring)
    details: dict[str, float] = field(default_factory=dict)  # the kind's extra figures (mean IoU, min cosine)
    output: str = ""  # a model with several outputs: the output these figures are of (the worst one)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # and every output's figures, by name

    @property
    def accuracy_drop_points(self) -> float | None:
        return accuracy_drop_points(self.reference_accuracy, self.accuracy)

    @property
    def passed(self) -> bool:
        ok_abs = self.max_abs_threshold is None or self.max_abs_diff <= self.max_abs_threshold
        return bool(ok_abs and self.top1_agreement >= self.min_top1_agreement and np.isfinite(self.max_abs_diff))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["passed"] = self.passed
        d["accuracy_drop_points"] = self.accuracy_drop_points
        return d

    def failure(self) -> str:
        """Why it failed, e.g. 'max abs diff 0.3 > 0.001; top-1 agreement 0.9 < 0.99' ('' when it passed)."""
        why = []
        if self.max_abs_threshold is not None and not self.max_abs_diff <= self.max_abs_threshold:
            why.append(f"max abs diff {self.max_abs_diff:.3g} > {self.max_abs_threshold:.3g}")
        if self.top1_agreement < self.min_top1_agreement:
            name = {"dense": "pixel agreement", "embedding": "mean cosine"}.get(self.kind, "top-1 agreement")
            why.append(f"{name} {self.top1_agreement:.4f} < {self.min_top1_agreement}")
        if not why and not np.isfinite(self.max_abs_diff):
            why.append("outputs are not finite")
        return (f"output {self.output!r}: " if self.output and why else "") + "; ".join(why)

    def margin(self) -> float:
        """How close the figures come to failing (above 1: failed): the larger of max |Δ| / its threshold and
        the agreement shortfall."""
        m = 0.0
        if self.max_abs_threshold:
            m = self.max_abs_diff / self.max_abs_threshold if np.isfinite(self.max_abs_diff) else np.inf
        if self.top1_agreement < self.min_top1_agreement:
            m = max(m, 1.0 + self.min_top1_agreement - self.top1_agreement)
        return float(m)


def compare(outputs: np.ndarray, reference: np.ndarray, *, rule: Rule, runtime: str,
            labels: np.ndarray | None = None, scale: np.ndarray | None = None, kind: str = "logits") -> Parity:
    """Parity figures of `outputs` against `reference` (same inputs, same order, batch first).

    labels: the inputs' classes, for accuracy beside agreement (classifiers). scale: the outputs whose
    magnitude sets the absolute tolerance (default `reference`; a one-example check keeps the whole split's).
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(outputs, dtype=np.float64).reshape(ref.shape)
    diff = np.abs(out - ref)
    agree, details = agreement(out, ref, kind)
    acc = ref_acc = None
    if labels is not None and ref.ndim == 2 and kind == "logits":
        acc = float((out.argmax(1) == labels).mean())
        ref_acc = float((ref.argmax(1) == labels).mean())
    return Parity(
        n_samples=len(out),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        top1_agreement=agree,
        max_abs_threshold=rule.max_abs(ref if scale is None else scale),
        min_top1_agreement=rule.min_top1,
        accuracy=acc,
        reference_accuracy=ref_acc,
        runtime=runtime,
        kind=kind,
        details=details,
    )


def compare_all(outputs: np.ndarray, reference: np.ndarray, *, fmt: str, variant: str, kind: str | dict[str, str],
                runtime: str, labels: np.ndarray | None = None) -> Parity:
    """`compare` with the artifact's rule. For several outputs (packed arrays, compressor/core/feeds.py) each
    output is judged with its own kind's rule (`kind`: one for all, or {output: kind}); the figures returned
    are the worst output's, with every output's in `outputs`, so the verdict fails if any output fails."""
    if not feeds.is_packed(reference):
        k = kind if isinstance(kind, str) else next(iter(kind.values()))
        return compare(outputs, reference, rule=rule(fmt, variant, k), runtime=runtime, labels=labels, kind=k)
    names = feeds.names(reference)
    if not feeds.is_packed(outputs) or set(feeds.names(outputs)) != set(names):
        raise CompressError(f"the artifact's outputs ({', '.join(feeds.names(outputs)) or 'one tensor'}) are not "
                            f"the model's ({', '.join(names)})")
    kinds = kind if isinstance(kind, dict) else dict.fromkeys(names, kind)
    per = {n: dataclasses.replace(compare(outputs[n], reference[n], rule=rule(fmt, variant, kinds[n]),
                                          runtime=runtime, kind=kinds[n]), output=n) for n in names}
    worst = max(per.values(), key=lambda p: (not p.passed, p.margin()))
    return dataclasses.replace(worst, outputs={n: p.to_dict() for n, p in per.items()})


def require(name: str, p: Parity | None) -> None:
    """Raise when an artifact's parity failed (or was never checked), so that it is never written."""
    if p is None:
        raise CompressError(f"{name} was not validated; every export must be checked")
    if not p.passed:
        raise ParityError(f"parity check failed for {name} in {p.runtime} ({p.failure()}); nothing was written"
                            " - report the model, or choose another --target/variant")
