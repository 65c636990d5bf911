"""The accuracy budget for TFLite full-integer int8, on top of exporters/tflite.py's converter.

The TFLite converter calibrates with min/max only and quantizes weights per channel, so of the
budget's fallbacks only "more calibration samples" applies; the other stages get no candidates.
(Keeping layers in float would need tf.lite's QuantizationDebugger denylist: not done.)
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from exporters.base import ExportJob

from .budget import Budget, Measure, Outcome, Settings, default_stages, search


def int8_within_budget(job: ExportJob, saved_model: Path, calib_pool: np.ndarray, budget: Budget, *,
                       first_samples: int | None = None, workdir: Path | None = None,
                       log: Callable[[str], None] = lambda _m: None) -> Outcome:
    """Convert TFLite int8 with `first_samples` calibration samples (default len(job.calib)), then more
    from `calib_pool` while it breaks the budget on job.inputs/job.labels against job.reference.

    Returns the Outcome: .artifact is the chosen .tflite path (in `workdir`), .trials the table.
    """
    from exporters import _tf, tflite

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
