"""The accuracy budget for TFLite full-integer int8, on top of exporters/tflite.py's converter.

The TFLite converter calibrates with min/max only, so of the budget's fallbacks "another
calibration method" and the ONNX schemes get no candidates; it tries more calibration samples,
per-tensor weights, then the most sensitive layers in float (tf.lite's QuantizationDebugger: its
per-layer error ranks them, its denylist keeps them float).
`from_qat` converts a quantization-aware-trained model (its QDQ ONNX) to TFLite int8 the same way.
"""
from __future__ import annotations

import dataclasses
import warnings
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
                       max_float_layers: int = 3, log: Callable[[str], None] = lambda _m: None) -> Outcome:
    """Convert TFLite int8 with `first_samples` calibration samples (default len(job.calib)); while it
    breaks the budget on job.inputs/job.labels against job.reference, try more samples from
    `calib_pool`, per-tensor weights, then up to `max_float_layers` of the most sensitive layers in float.

    Returns the Outcome: .artifact is the chosen .tflite path (in `workdir`), .trials the table.
    """
    from exporters import tflite

    workdir = Path(workdir or _tf.scratch_dir(job))
    workdir.mkdir(parents=True, exist_ok=True)
    layout = _tf.layout_of(job)
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
        top = tflite.run(path, job.inputs, layout).reshape(len(job.inputs), -1).argmax(1)
        acc = None if job.labels is None else float((top == job.labels).mean())
        return Measure(acc, float((top == ref_top).mean()))

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

    from exporters import tflite

    conv = tflite.converter(saved_model, "int8", job, per_channel=s.per_channel)
    if denylist:  # the float layers need float kernels next to the int8 ones
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylist)) if denylist else None
    with tflite._quiet():
        return tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=tflite.representative(job),
                                                         debug_options=options)


def layer_errors(saved_model: Path, job: ExportJob, s: Settings) -> list[tuple[str, float]]:
    """Quantized layers (their output tensors' names), worst first, by RMSE / scale of their int8
    outputs against float: TF's documented sensitivity measure (~0.29 is plain rounding error)."""
    import csv
    import io

    from exporters import tflite

    buf = io.StringIO()
    with warnings.catch_warnings():  # the debugger uses the deprecated tf.lite.Interpreter inside TF
        warnings.simplefilter("ignore", UserWarning)
        dbg = _debugger(saved_model, job, s)
        with tflite._quiet():
            dbg.run()
            dbg.layer_statistics_dump(buf)
    rows = [r for r in csv.DictReader(io.StringIO(buf.getvalue())) if r.get("tensor_name") and float(r["scale"])]
    scores = [(r["tensor_name"], float(r["mean_squared_error"]) ** 0.5 / float(r["scale"])) for r in rows]
    return sorted(scores, key=lambda t: -t[1])


def selective(saved_model: Path, job: ExportJob, s: Settings) -> bytes:
    """int8 with the layers in s.float_layers (output tensor names) left in float; float inputs/outputs."""
    from exporters import tflite

    try:
        with warnings.catch_warnings(), tflite._quiet():
            warnings.simplefilter("ignore", UserWarning)  # TF's own use of the deprecated tf.lite.Interpreter
            return _debugger(saved_model, job, s, denylist=s.float_layers).get_nondebug_quantized_model()
    except Exception as e:  # noqa: BLE001 - a converter error, named in one line
        raise tflite.converter_error(job, "int8", str(e)) from None


def from_qat(qat_onnx: Path, splits: Splits, workdir: Path, *, example_shape: tuple[int, ...], layout: str,
             reference: np.ndarray, max_accuracy_drop: float | None,
             log: Callable[[str], None] = lambda _m: None) -> Artifact:
    """TFLite full-integer int8 of a QAT model, from its QDQ ONNX.

    The QAT weights are dequantized to float (they lie on the int8 grid, per channel, with max|w| =
    127 x scale as TFLite's converter sets it), converted by onnx2tf + the TFLite converter, and the
    activations calibrated on the training split. Judged like every TFLite int8: against the float model
    (`reference`: its logits on the held-out split), accuracy drop within `max_accuracy_drop` points,
    top-1 agreement at least tflite.THRESHOLDS["int8"]; the agreement with the QAT ONNX itself (what
    was converted) is recorded as the conversion's fidelity.
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
    budget = Budget(max_accuracy_drop, min_top1)
    out = int8_within_budget(job, _tf.saved_model(job), splits.train.x, budget, workdir=workdir, log=log)
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
                    "budget": dataclasses.asdict(budget),
                    "trials": [t.to_dict() for t in out.trials], **accuracy_fields(parity, path)})
    twin.unlink(missing_ok=True)
    return a
