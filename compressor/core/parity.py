"""Parity: an artifact's outputs against the reference (PyTorch's, on the same real inputs).

One owner for how parity is judged. `RULES` is the one table of tolerances: per artifact format,
variant and output kind, the largest absolute difference allowed (relative to the reference's largest
magnitude) and the least top-1 agreement. Every exporter, quantizer and benchmark row looks its rule up
here, and `compare` computes the figures for any of them. Changing a tolerance is one line below.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CompressError, ParityError


@dataclass(frozen=True)
class Rule:
    rel_tol: float | None  # max |Δ| / max(1, max |reference|); None: not judged on it (integer variants)
    min_top1: float  # least top-1 agreement with the reference

    def max_abs(self, reference: np.ndarray) -> float | None:
        return None if self.rel_tol is None else self.rel_tol * max(1.0, float(np.abs(reference).max()))


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
    """The rule for an artifact; "*" rows cover a format's other variants."""
    for key in ((fmt, variant, kind), (fmt, "*", kind)):
        if key in RULES:
            return RULES[key]
    known = sorted({f"{f}:{v}" for f, v, _ in RULES})
    raise CompressError(f"no parity rule for {fmt}:{variant} ({kind}); known: {', '.join(known)}")


def page_rule(model: Rule) -> Rule:
    """A bundle's index.html shows one example: the model's tolerance, and the top-1 must match."""
    return Rule(model.rel_tol, 1.0)


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
            why.append(f"top-1 agreement {self.top1_agreement:.4f} < {self.min_top1_agreement}")
        if not why and not np.isfinite(self.max_abs_diff):
            why.append("outputs are not finite")
        return "; ".join(why)


def compare(outputs: np.ndarray, reference: np.ndarray, *, rule: Rule, runtime: str,
            labels: np.ndarray | None = None, scale: np.ndarray | None = None) -> Parity:
    """Parity figures of `outputs` against `reference` (same inputs, same order, batch first).

    labels: the inputs' classes, for accuracy beside agreement. scale: the outputs whose magnitude sets
    the absolute tolerance (default `reference`; a one-example check keeps the whole split's scale).
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(outputs, dtype=np.float64).reshape(ref.shape)
    diff = np.abs(out - ref)
    top_out = out.reshape(len(out), -1).argmax(1)
    top_ref = ref.reshape(len(ref), -1).argmax(1)
    acc = ref_acc = None
    if labels is not None and ref.ndim == 2:
        acc = float((top_out == labels).mean())
        ref_acc = float((top_ref == labels).mean())
    return Parity(
        n_samples=len(out),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        top1_agreement=float((top_out == top_ref).mean()),
        max_abs_threshold=rule.max_abs(ref if scale is None else scale),
        min_top1_agreement=rule.min_top1,
        accuracy=acc,
        reference_accuracy=ref_acc,
        runtime=runtime,
    )


def require(name: str, p: Parity | None) -> None:
    """Raise when an artifact's parity failed (or was never checked), so that it is never written."""
    if p is None:
        raise CompressError(f"{name} was not validated; every export must be checked")
    if not p.passed:
        raise ParityError(f"parity check failed for {name} in {p.runtime} ({p.failure()}); nothing was written"
                            " - report the model, or choose another --target/variant")
