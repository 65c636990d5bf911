"""TFLite full-integer int8 of a quantization-aware-trained model (tflite:qat-int8), from its QAT ONNX.

Made in the quantize step, since the fine-tuned weights exist only after QAT; the conversion and its
accuracy budget are the TFLite target's own (exporters/tflite/int8.py).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from compressor.core.artifact import Artifact
from compressor.core.budget import AccuracyBudget
from compressor.core.parity import compare, rule
from exporters import tf_route, tflite
from exporters.base import ExportJob, ExportOptions, Shared
from exporters.onnx import run as ort_run
from exporters.onnx.int8 import dequantized
from exporters.tflite.int8 import CALIB_SAMPLES, int8_within_budget

from ..data import Splits
from .core import accuracy_fields


def from_qat(qat_onnx: Path, splits: Splits, workdir: Path, *, example_shape: tuple[int, ...], layout: str,
             reference: np.ndarray, max_accuracy_drop: float | None,
             log: Callable[[str], None] = lambda _m: None) -> Artifact:
    """TFLite full-integer int8 of a QAT model, from its QDQ ONNX.

    The QAT weights are dequantized to float (they lie on the int8 grid, per channel, with max|w| =
    127 x scale as TFLite's converter sets it), converted by onnx2tf + the TFLite converter, and the
    activations calibrated on the training split. Judged like every TFLite int8: against the float model
    (`reference`: its logits on the held-out split), accuracy drop within `max_accuracy_drop` points,
    top-1 agreement at least the parity rule of tflite:qat-int8; the agreement with the QAT ONNX itself (what
    was converted) is recorded as the conversion's fidelity.
    """
    t0 = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    test = splits.test
    twin = dequantized(qat_onnx, workdir / "model.qat-float.onnx")
    judged = rule("tflite", "qat-int8")
    # the TF route starts from the dequantized twin: the job has no PyTorch model, only that ONNX graph
    job = ExportJob(model=None, example=torch.zeros(example_shape), inputs=test.x, reference=reference,
                    calib=splits.train.x[:CALIB_SAMPLES], workdir=workdir, labels=test.y,
                    options=ExportOptions(layout=layout), shared=Shared(tf_onnx=twin))
    budget = AccuracyBudget(max_accuracy_drop, judged.min_top1)
    out = int8_within_budget(job, tf_route.saved_model(job), splits.train.x, budget, workdir=workdir, log=log)
    path = workdir / "model_qat_int8.tflite"
    Path(out.artifact).replace(path)
    outputs = tflite.run(path, test.x, layout)
    parity = compare(outputs, reference, labels=test.y, rule=judged, runtime=tflite.runtime_name())
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
