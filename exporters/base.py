"""The small contract every exporter follows, and what the pipeline hands it.

An exporter is one module (or small package) in this folder, registered in exporters/__init__.py, with:
    NAME: str                                   the --target name
    export(job: ExportJob) -> list[Artifact]    write the artifact(s) into job.workdir
    validate(artifact, job) -> Parity           run the artifact in its own runtime on job.inputs
The pipeline calls `export`, then `validate` on each artifact, then `require_parity`:
an artifact whose parity fails is an error, never a silent file. Tolerances live in
compressor/core/parity.py (one table), not in the exporters.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.artifact import Artifact
from compressor.core.checks import check_number
from compressor.core.errors import CompressError
from compressor.core.registry import check_choice

LAYOUTS = ("nchw", "nhwc")
DYNAMIC = ("batch", "seq")
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
    # ONNX's dynamic axes: the batch always; "seq" adds the sequence length of token inputs (2-D)
    dynamic: tuple[str, ...] = ("batch",)

    def __post_init__(self) -> None:
        # checked here, so that a typo fails before any slow conversion starts
        check_choice("layout", self.layout, LAYOUTS)
        if self.opset is not None:
            check_number("--opset", self.opset, 7, 23, hint="what torch.onnx writes; 17 suits onnx2tf")
        if self.tfjs_quant is not None:
            check_choice("TF.js quantization", self.tfjs_quant, TFJS_QUANT)
        for v in self.variants:
            check_choice("TFLite variant", v, TFLITE_VARIANTS)
        for d in self.dynamic:
            check_choice("--dynamic axis", d, DYNAMIC)
        if "batch" not in self.dynamic:
            raise CompressError(f"--dynamic {','.join(self.dynamic)}: the batch is always dynamic in ONNX; give "
                                "batch or batch,seq")
        if self.calib_samples < 1:
            raise CompressError(f"--calib {self.calib_samples} must be at least 1")
        if self.max_accuracy_drop is not None:  # NaN or Inf would silently disable the budget
            check_number("--max-accuracy-drop", self.max_accuracy_drop, 0, hint="percentage points")
        check_number("min_agreement", self.min_agreement, 0, 1, hint="the fraction of top-1 predictions kept")
        if self.opset is not None and self.opset < 1:
            raise CompressError(f"opset {self.opset} must be at least 1")
        if self.bundle is not None:
            parts = Path(self.bundle).parts
            if not parts or Path(self.bundle).is_absolute() or ".." in parts:
                raise CompressError(f"--bundle {self.bundle!r} must be a folder name inside --out, like web")


@dataclass
class Shared:
    """What one target makes and a later one reuses, within one run (targets run in registry order)."""

    folder: Path | None = None  # the job's private temporary folder (ExportJob.private_dir)
    float_onnx: Artifact | None = None  # onnx:float32, once an exporter made it (published or private)
    tf_onnx: Path | None = None  # the opset-17 ONNX graph fed to onnx2tf (tf_route.tf_onnx)
    saved_model: Path | None = None  # onnx2tf's SavedModel, shared by TFLite and TF.js
    saved_model_seconds: float = 0.0  # counted once, in the first artifact that reports it
    bundles: dict[Path, Artifact] = field(default_factory=dict)  # web bundles, to record their model's parity
    skipped: dict[str, str] = field(default_factory=dict)  # default variants left out, and why (manifest)
    pending: dict[str, Any] = field(default_factory=dict)  # converters running in the background (background.py)
    when_saved_model: list[Callable[[], None]] = field(default_factory=list)  # to start once the SavedModel exists

    def take_saved_model_seconds(self) -> float:
        seconds, self.saved_model_seconds = self.saved_model_seconds, 0.0
        return seconds


@dataclass
class ExportJob:
    """Everything an exporter needs; built once per run by the pipeline."""

    model: Any  # torch.nn.Module in eval mode
    example: Any  # torch.Tensor, batch 1, the model's input (a tuple of them for several inputs)
    inputs: np.ndarray  # real inputs for parity, batch first
    reference: np.ndarray  # the PyTorch model's outputs on `inputs`
    calib: np.ndarray  # calibration inputs (from the training split)
    workdir: Path
    labels: np.ndarray | None = None
    calib_pool: np.ndarray | None = None  # the whole training split: more calibration samples, if a budget needs them
    options: ExportOptions = field(default_factory=ExportOptions)
    # the output's kind (compressor.core.parity.KINDS): how parity is judged; {name: kind} for several outputs,
    # whose `reference` is then a packed array (compressor/core/feeds.py), as `inputs` is for several inputs
    kind: str | dict[str, str] = "logits"
    class_names: tuple[str, ...] | None = None  # a classifier's labels, written into the artifacts
    preprocess: dict | None = None  # image files' preprocessing (compressor/preprocess.py's record), for bundles
    shared: Shared = field(default_factory=lambda: Shared())

    def private_dir(self) -> Path:
        """A temporary folder for this job's intermediates (never published), removed with the job."""
        if self.shared.folder is None:
            self.shared.folder = Path(tempfile.mkdtemp(prefix="compress-tf-"))
            weakref.finalize(self, shutil.rmtree, self.shared.folder, True)
        return self.shared.folder
