"""The accuracy budget for TFLite full-integer int8, on top of the converter in this package.

The TFLite converter calibrates with min/max only, so of the budget's fallbacks "another
calibration method" and the ONNX schemes get no candidates; it tries more calibration samples,
per-tensor weights, then the most sensitive layers in float (tf.lite's QuantizationDebugger: its
per-layer error ranks them, its denylist keeps them float).
compressor/quantize/qat_tflite.py converts a quantization-aware-trained model to TFLite int8 with it.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from compressor.core.budget import AccuracyBudget, Measure, Outcome, Settings, default_stages, search
from compressor.core.parity import agreement

from .. import tf_route, tflite
from ..base import ExportJob

CALIB_SAMPLES = 200  # the first try's calibration samples (more only if the budget needs them)


def int8_within_budget(job: ExportJob, saved_model: Path, calib_pool: np.ndarray, budget: AccuracyBudget, *,
                       first_samples: int | None = None, workdir: Path | None = None,
                       max_float_layers: int = 3, log: Callable[[str], None] = lambda _m: None) -> Outcome:
    """Convert TFLite int8 with `first_samples` calibration samples (default len(job.calib)); while it
    breaks the budget on job.inputs/job.labels against job.reference, try more samples from
    `calib_pool`, per-tensor weights, then up to `max_float_layers` of the most sensitive layers in float.

    Returns the Outcome: .artifact is the chosen .tflite path (in `workdir`), .trials the table.
    """
    workdir = Path(workdir or job.private_dir())
    workdir.mkdir(parents=True, exist_ok=True)
    layout = tf_route.layout_of(job)
    counter = iter(range(10_000))
    ref_top = job.reference.reshape(len(job.reference), -1).argmax(1)

    def calibrated(s: Settings) -> ExportJob:
        return dataclasses.replace(job, calib=calib_pool[:s.calib_samples])

    def make(s: Settings) -> Path:
        path = workdir / f"int8_try{next(counter)}.tflite"
        if s.float_layers:
            path.write_bytes(selective(saved_model, calibrated(s), s))
        else:
            path.write_bytes(tflite.convert(saved_model, "int8", calibrated(s), per_channel=s.per_channel))
        return path

    def evaluate(path: Path) -> Measure:
        out = tflite.run(path, job.inputs, layout)
        out = tf_route.to_torch_layout(out, tf_route.output_layout(out.shape, job.reference.shape))
        out = out.reshape(job.reference.shape)
        acc = None if job.labels is None else float((out.reshape(len(out), -1).argmax(1) == job.labels).mean())
        return Measure(acc, agreement(out, job.reference, job.kind)[0])  # the output kind's agreement

    ranked: dict[tuple, list[str]] = {}

    def sensitivity(s: Settings) -> list[str]:
        key = (s.calib_samples, s.per_channel)
        if key not in ranked:
            log("measuring per-layer quantization error (tf.lite QuantizationDebugger) ...")
            ranked[key] = [name for name, _ in layer_errors(saved_model, calibrated(s), s)]
        return ranked[key]

    ref_acc = None if job.labels is None else float((ref_top == job.labels).mean())
    first = min(first_samples or len(job.calib), len(calib_pool))
    stages = default_stages(max_calib=len(calib_pool), methods=(), schemes=(), per_channel_toggle=True,
                            sensitivity=sensitivity, max_float_layers=max_float_layers)
    out = None
    try:
        out = search(Settings(first, "minmax", True, "s8s8"), make, evaluate, budget, ref_acc, stages=stages,
                     log=log, what="tflite int8")
    finally:  # only the chosen file stays
        for f in workdir.glob("int8_try*.tflite"):
            if out is None or f != out.artifact:
                f.unlink()
    return out


def _debugger(saved_model: Path, job: ExportJob, s: Settings, denylist: tuple[str, ...] = ()):
    """tf.lite's QuantizationDebugger on the int8 converter (debug data: the calibration samples)."""
    import tensorflow as tf

    conv = tflite.converter(saved_model, "int8", job, per_channel=s.per_channel)
    if denylist:  # the float layers need float kernels next to the int8 ones
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylist)) if denylist else None
    with tflite.quiet():
        return tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=tflite.representative(job),
                                                         debug_options=options)


def layer_errors(saved_model: Path, job: ExportJob, s: Settings) -> list[tuple[str, float]]:
    """Quantized layers (their output tensors' names), worst first, by RMSE / scale of their int8
    outputs against float: TF's documented sensitivity measure (~0.29 is plain rounding error)."""
    import csv
    import io

    buf = io.StringIO()
    with warnings.catch_warnings():  # the debugger uses the deprecated tf.lite.Interpreter inside TF
        warnings.simplefilter("ignore", UserWarning)
        dbg = _debugger(saved_model, job, s)
        with tflite.quiet():
            dbg.run()
            dbg.layer_statistics_dump(buf)
    rows = [r for r in csv.DictReader(io.StringIO(buf.getvalue())) if r.get("tensor_name") and float(r["scale"])]
    scores = [(r["tensor_name"], float(r["mean_squared_error"]) ** 0.5 / float(r["scale"])) for r in rows]
    return sorted(scores, key=lambda t: -t[1])


def selective(saved_model: Path, job: ExportJob, s: Settings) -> bytes:
    """int8 with the layers in s.float_layers (output tensor names) left in float; float inputs/outputs."""
    try:
        with warnings.catch_warnings(), tflite.quiet():
            warnings.simplefilter("ignore", UserWarning)  # TF's own use of the deprecated tf.lite.Interpreter
            return _debugger(saved_model, job, s, denylist=s.float_layers).get_nondebug_quantized_model()
    except Exception as e:  # noqa: BLE001 - a converter error, named in one line
        raise tflite.converter_error(job, "int8", str(e)) from None
