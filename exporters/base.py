"""The small contract every exporter module follows.

An exporter is one module in this package with:
    NAME: str                                   the --target name
    export(job: ExportJob) -> list[Artifact]    write the artifact(s) into job.workdir
    validate(artifact, job) -> Parity           run the artifact in its own runtime on job.inputs
The pipeline calls `export`, then `validate` on each artifact, then `require_parity`:
an artifact whose parity fails is an error, never a silent file.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import CompressError
from compressor.registry import check_choice


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]
    dtype: str


@dataclass(frozen=True)
class Parity:
    """Outputs of an artifact against PyTorch's on the same real inputs."""

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
        if self.accuracy is None or self.reference_accuracy is None:
            return None
        return round(100.0 * (self.reference_accuracy - self.accuracy), 4)

    @property
    def passed(self) -> bool:
        ok_abs = self.max_abs_threshold is None or self.max_abs_diff <= self.max_abs_threshold
        return bool(ok_abs and self.top1_agreement >= self.min_top1_agreement and np.isfinite(self.max_abs_diff))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["passed"] = self.passed
        d["accuracy_drop_points"] = self.accuracy_drop_points
        return d


@dataclass
class Artifact:
    path: Path  # a file or a folder inside the job's workdir
    format: str  # onnx | tflite | tfjs | web-bundle ...
    variant: str  # float32 | float16 | int8 | ...
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    opset: int | None = None
    convert_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    parity: Parity | None = None

    @property
    def name(self) -> str:
        return f"{self.format}:{self.variant}"


LAYOUTS = ("nchw", "nhwc")
TFJS_QUANT = ("float16", "uint8", "uint16")
TFLITE_VARIANTS = ("float32", "float16", "dynamic-int8", "int8", "int16x8")


@dataclass(frozen=True)
class ExportOptions:
    opset: int | None = None  # None: the exporter's default
    calib_samples: int = 200
    layout: str = "nchw"  # nchw keeps PyTorch's layout at the I/O; nhwc for TFLite-native inputs
    tfjs_quant: str | None = None  # float16 | uint8 | uint16
    variants: tuple[str, ...] = ()  # TFLite variants; empty: the exporter's default set
    bundle: str | None = None  # browser bundle folder inside --out; None: "web" (tfjs), "web-ort" (onnx-web)
    # accuracy budget of calibrated int8 variants (percentage points on the held-out inputs); None: parity only
    max_accuracy_drop: float | None = None
    min_agreement: float = 0.99  # top-1 agreement with the float model, with the budget

    def __post_init__(self) -> None:
        # checked here, so that a typo fails before any slow conversion starts
        check_choice("layout", self.layout, LAYOUTS)
        if self.tfjs_quant is not None:
            check_choice("TF.js quantization", self.tfjs_quant, TFJS_QUANT)
        for v in self.variants:
            check_choice("TFLite variant", v, TFLITE_VARIANTS)
        if self.calib_samples < 1:
            raise CompressError(f"--calib {self.calib_samples} must be at least 1")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise CompressError(f"--max-accuracy-drop {self.max_accuracy_drop} must be >= 0 percentage points")
        if self.bundle is not None:
            parts = Path(self.bundle).parts
            if not parts or Path(self.bundle).is_absolute() or ".." in parts:
                raise CompressError(f"--bundle {self.bundle!r} must be a folder name inside --out, like web")


@dataclass
class ExportJob:
    """Everything an exporter needs; built once per run by the pipeline."""

    model: Any  # torch.nn.Module in eval mode
    example: Any  # torch.Tensor, batch 1, the model's input
    inputs: np.ndarray  # real inputs for parity, batch first
    reference: np.ndarray  # the PyTorch model's outputs on `inputs`
    calib: np.ndarray  # calibration inputs (from the training split)
    workdir: Path
    labels: np.ndarray | None = None
    calib_pool: np.ndarray | None = None  # the whole training split: more calibration samples, if a budget needs them
    options: ExportOptions = field(default_factory=ExportOptions)
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # produced so far, by Artifact.name
    scratch: dict[str, Any] = field(default_factory=dict)  # shared intermediates (e.g. a SavedModel)


def compare(
    outputs: np.ndarray,
    job: ExportJob,
    *,
    max_abs: float | None,
    min_top1: float,
    runtime: str,
) -> Parity:
    """Parity figures of `outputs` (same order as job.inputs) against the PyTorch reference."""
    out = np.asarray(outputs, dtype=np.float64).reshape(job.reference.shape)
    ref = job.reference.astype(np.float64)
    diff = np.abs(out - ref)
    top_out = out.reshape(len(out), -1).argmax(1)
    top_ref = ref.reshape(len(ref), -1).argmax(1)
    acc = ref_acc = None
    if job.labels is not None and ref.ndim == 2:
        acc = float((top_out == job.labels).mean())
        ref_acc = float((top_ref == job.labels).mean())
    return Parity(
        n_samples=len(out),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        top1_agreement=float((top_out == top_ref).mean()),
        max_abs_threshold=max_abs,
        min_top1_agreement=min_top1,
        accuracy=acc,
        reference_accuracy=ref_acc,
        runtime=runtime,
    )


def require_parity(artifact: Artifact) -> None:
    """Raise when the artifact's parity failed, so that it is never written."""
    p = artifact.parity
    if p is None:
        raise CompressError(f"{artifact.name} was not validated; every export must be checked")
    if p.passed:
        return
    why = []
    if p.max_abs_threshold is not None and not p.max_abs_diff <= p.max_abs_threshold:
        why.append(f"max abs diff {p.max_abs_diff:.3g} > {p.max_abs_threshold:.3g}")
    if p.top1_agreement < p.min_top1_agreement:
        why.append(f"top-1 agreement {p.top1_agreement:.4f} < {p.min_top1_agreement}")
    raise CompressError(
        f"parity check failed for {artifact.name} in {p.runtime} ({'; '.join(why)}); nothing was written"
        " - report the model, or choose another --target/variant"
    )
