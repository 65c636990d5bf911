"""The accuracy budget for TFLite full-integer int8, on top of exporters/tflite.py's converter.

The TFLite converter calibrates with min/max only and quantizes weights per channel, so of the
budget's fallbacks only "more calibration samples" applies; the other stages get no candidates.
(Keeping layers in float would need tf.lite's QuantizationDebugger denylist: not done.)
`from_qat` converts a quantization-aware-trained model (its QDQ ONNX) to TFLite int8 the same way.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from exporters import _tf
from exporters.base import Artifact, ExportJob

from ..data import Splits
from .budget import Budget, Measure, Outcome, Settings, default_stages, search

CALIB_SAMPLES = 200  # the first try's calibration samples (more only if the budget needs them)


def int8_within_budget(job: ExportJob, saved_model: Path, calib_pool: np.ndarray, budget: Budget, *,
                       first_samples: int | None = None, workdir: Path | None = None,
                       log: Callable[[str], None] = lambda _m: None) -> Outcome:
    """Convert TFLite int8 with `first_samples` calibration samples (default len(job.calib)), then more
    from `calib_pool` while it breaks the budget on job.inputs/job.labels against job.reference.

    Returns the Outcome: .artifact is the chosen .tflite path (in `workdir`), .trials the table.
    """
    from exporters import tflite

    workdir = Path(workdir or _tf.scratch_dir(job))
    workdir.mkdir(parents=True, exist_ok=True)
    layout = _tf.layout_of(job)
    counter = iter(range(10_000))
    ref_top = job.reference.reshape(len(job.reference), -1).argmax(1)

    def make(s: Settings) -> Path:
        path = workdir / f"int8_try{next(counter)}.tflite"
        calibrated = dataclasses.replace(job, calib=calib_pool[:s.calib_samples])
        path.write_bytes(tflite.convert(saved_model, "int8", calibrated))
        return path

    def evaluate(path: Path) -> Measure:
        top = tflite.run(path, job.inputs, layout).reshape(len(job.inputs), -1).argmax(1)
        acc = None if job.labels is None else float((top == job.labels).mean())
        return Measure(acc, float((top == ref_top).mean()))

    ref_acc = None if job.labels is None else float((ref_top == job.labels).mean())
    first = min(first_samples or len(job.calib), len(calib_pool))
    stages = default_stages(max_calib=len(calib_pool), methods=(), schemes=(), per_channel_toggle=False)
    out = None
    try:
        out = search(Settings(first, "minmax", True, "s8s8"), make, evaluate, budget, ref_acc, stages=stages,
                     log=log, what="tflite int8")
    finally:  # only the chosen file stays
        for f in workdir.glob("int8_try*.tflite"):
            if out is None or f != out.artifact:
                f.unlink()
    return out



def from_qat(qat_onnx: Path, splits: Splits, workdir: Path, *, example_shape: tuple[int, ...], layout: str,
             reference: np.ndarray, budget: Budget, log: Callable[[str], None] = lambda _m: None) -> Artifact:
    """TFLite full-integer int8 of a QAT model, from its QDQ ONNX.

    The QAT weights are dequantized to float (they lie on the int8 grid, per channel, with max|w| =
    127 x scale as TFLite's converter sets it), converted by onnx2tf + the TFLite converter, and the
    activations calibrated on the training split. Judged like every TFLite int8: against the float model
    (`reference`: its logits on the held-out split), accuracy drop within `budget`; the agreement with
    the QAT ONNX itself (what was converted) is recorded as the conversion's fidelity.
    """
    import time
    from importlib.metadata import version

    import torch

    from exporters import tflite
    from exporters.base import ExportOptions, compare
    from exporters.onnx import run as ort_run

    from .core import accuracy_fields
    from .onnx import dequantized

    t0 = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    test = splits.test
    twin = dequantized(qat_onnx, workdir / "model.qat-float.onnx")
    min_top1 = tflite.THRESHOLDS["int8"][1]
    job = ExportJob(model=None, example=torch.zeros(example_shape), inputs=test.x, reference=reference,
                    calib=splits.train.x[:CALIB_SAMPLES], workdir=workdir, labels=test.y,
                    options=ExportOptions(layout=layout), scratch={"tf_onnx": twin})
    out = int8_within_budget(job, _tf.saved_model(job), splits.train.x, Budget(budget.max_accuracy_drop, min_top1),
                             workdir=workdir, log=log)
    path = workdir / "model_qat_int8.tflite"
    Path(out.artifact).replace(path)
    outputs = tflite.run(path, test.x, layout)
    parity = compare(outputs, job, max_abs=None, min_top1=min_top1,
                     runtime=f"ai-edge-litert {version('ai-edge-litert')} (builtin ops)")
    qat_top = ort_run(qat_onnx, test.x).reshape(len(test.x), -1).argmax(1)
    ins, outs = tflite.io_specs(path)
    a = Artifact(path=path, format="tflite", variant="qat-int8", inputs=ins, outputs=outs,
                 convert_seconds=time.perf_counter() - t0, parity=parity)
    a.extra.update({"converter": "QAT QDQ ONNX -> float weights on the int8 grid -> onnx2tf + tf.lite.TFLiteConverter",
                    "layout": layout, "calibration_samples": out.chosen.settings.calib_samples,
                    "top1_agreement_vs_qat_onnx": float((outputs.reshape(len(outputs), -1).argmax(1) == qat_top).mean()),
                    "budget": {"max_accuracy_drop": budget.max_accuracy_drop, "min_agreement": min_top1},
                    "trials": [t.to_dict() for t in out.trials], **accuracy_fields(parity, path)})
    twin.unlink(missing_ok=True)
    return a
