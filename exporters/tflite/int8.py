"""The accuracy budget for TFLite full-integer int8, on top of the converter in this package.

The TFLite converter calibrates with min/max only, so of the budget's fallbacks "another
calibration method" and the ONNX schemes get no candidates; it tries more calibration samples,
per-tensor weights, then the most sensitive layers in float (ranked by TF's per-layer measure on a
NumericVerify debug model, kept float with the quantizer's node denylist).
Before any of that, the float model is run on its inputs rounded to the int8 input's grid: when that alone
breaks the budget, the model, not the conversion, is the cause, and the error says so at once.

Every int8 model here is made in two steps, calibrate then quantize (what TFLiteConverter.convert does
inside), so that the calibrated ranges can be corrected in between: onnx2tf pads a MaxPool with
explicit padding (ResNet's stem) by a PADV2 with the float minimum, -3.4e38; calibrated as it is, that
range gives the pooled tensor, and the conv before it, a scale of 1e36 (every activation rounds to
one value), which XNNPACK refuses ("failed to create XNNPACK runtime") and the builtin ADD kernel
aborts the process on. The pad's range is set to its input's, so the int8 pad value becomes the
input's minimum: max pooling's -inf padding in int8.
compressor/quantize/qat_tflite.py converts a quantization-aware-trained model to TFLite int8 with it.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from compressor.core import feeds
from compressor.core.budget import AccuracyBudget, Measure, Outcome, Settings, default_stages, search
from compressor.core.errors import BudgetError, CompressError, ConverterError
from compressor.core.parity import agreement

from .. import tf_route, tflite
from ..base import ExportJob

CALIB_SAMPLES = 200  # the first try's calibration samples (more only if the budget needs them)
RANK_SAMPLES = 64  # samples the layer ranking runs (enough to order the layers; each runs both copies)
PAD_MINUS_INF = -1e30  # a PADV2 constant this low stands for -inf (max pooling's padding)
# the search is skipped only when input rounding alone misses the agreement floor by this much: a float-layer
# trial keeping the first layer float does not round the input, so a near miss still gets the full search
DOOMED_MARGIN = 0.05
UNRANKED = "(layer ranking failed)"  # stands for the ranked layers when ranking failed: a trial with its error


def int8_within_budget(job: ExportJob, saved_model: Path, calib_pool: np.ndarray, budget: AccuracyBudget, *,
                       first_samples: int | None = None, workdir: Path | None = None,
                       max_float_layers: int = 3, log: Callable[[str], None] = lambda _m: None) -> Outcome:
    """Convert TFLite int8 with `first_samples` calibration samples (default len(job.calib)); while it
    breaks the budget on job.inputs/job.labels against job.reference, try more samples from
    `calib_pool`, per-tensor weights, then up to `max_float_layers` of the most sensitive layers in float.

    Returns the Outcome: .artifact is the chosen .tflite path (in `workdir`), .trials the table. A step
    that fails (a conversion, a runtime refusing a model, the layer ranking) is a trial with its error.
    """
    workdir = Path(workdir or job.private_dir())
    workdir.mkdir(parents=True, exist_ok=True)
    counter = iter(range(10_000))
    ref_top = job.reference.reshape(len(job.reference), -1).argmax(1)
    calibrations: dict[int, bytes] = {}  # by sample count: per-tensor and float-layer trials reuse it
    ranked: dict[tuple, list[str]] = {}
    rank_error: dict[tuple, str] = {}

    def calibrated(s: Settings) -> bytes:
        if s.calib_samples not in calibrations:
            calibrations[s.calib_samples] = calibrate(saved_model, _with_calib(job, calib_pool, s))
        return calibrations[s.calib_samples]

    def make(s: Settings) -> Path:
        if s.float_layers == (UNRANKED,):
            raise CompressError(rank_error[(s.calib_samples, s.per_channel)])
        path = workdir / f"int8_try{next(counter)}.tflite"
        path.write_bytes(quantize(calibrated(s), _with_calib(job, calib_pool, s), s))
        return path

    def evaluate(path: Path) -> Measure:
        out = tflite.outputs_like_torch(path, job)[0].reshape(job.reference.shape)
        acc = None if job.labels is None else float((out.reshape(len(out), -1).argmax(1) == job.labels).mean())
        return Measure(acc, agreement(out, job.reference, job.kind)[0])  # the output kind's agreement

    def sensitivity(s: Settings) -> list[str]:
        key = (s.calib_samples, s.per_channel)
        if key not in ranked:
            log("measuring per-layer quantization error (NumericVerify debug model) ...")
            try:
                ranked[key] = [n for n, _ in _ranked(calibrated(s), _with_calib(job, calib_pool, s), s)]
            except Exception as e:  # noqa: BLE001 - the search records it as this stage's trial, then goes on
                rank_error[key] = str(e) if isinstance(e, CompressError) else \
                    f"ranking the layers' int8 error failed ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
                ranked[key] = [UNRANKED]
        return ranked[key]

    ref_acc = None if job.labels is None else float((ref_top == job.labels).mean())
    first = min(first_samples or len(job.calib), len(calib_pool))
    # the narrowest and the widest input range the search calibrates with must both fail (more samples widen it)
    doomed = _input_rounding_cause(job, calib_pool[:first], budget)
    if doomed and (np.min(calib_pool) < np.min(calib_pool[:first]) or np.max(calib_pool) > np.max(calib_pool[:first])):
        doomed = _input_rounding_cause(job, calib_pool, budget)
    if doomed:  # no calibration, weight scheme or float layer can help: fail before the minutes-long search
        raise BudgetError(f"tflite int8 cannot meet the accuracy budget (drop <= {budget.max_accuracy_drop} points, "
                          f"agreement >= {budget.min_agreement}); no int8 model was tried:\n{doomed}")
    stages = default_stages(max_calib=len(calib_pool), methods=(), schemes=(), per_channel_toggle=True,
                            sensitivity=sensitivity, max_float_layers=max_float_layers)
    out = None
    try:
        out = search(Settings(first, "minmax", True, "s8s8"), make, evaluate, budget, ref_acc, stages=stages,
                     log=log, what="tflite int8", skip="leave int8 out of --variants")
    finally:  # only the chosen file stays
        for f in workdir.glob("int8_try*.tflite"):
            if out is None or f != out.artifact:
                f.unlink()
    return out


def _input_rounding_cause(job: ExportJob, calib: np.ndarray, budget: AccuracyBudget) -> str:
    """Why no int8 model can fit, when the float model is the cause: its agreement with itself when only its
    input is rounded to the int8 input's grid (every int8 model with int8 input rounds it so). A model that
    already fails the budget there amplifies input changes of half a step (as an untrained net with
    recalibrated BatchNorm does: gains of 100 on near-constant channels), and no calibration, weight scheme
    or float layer can help; '' when that is not the case or does not apply (integer or several inputs)."""
    x = np.asarray(job.inputs)
    if feeds.is_packed(job.inputs) or not np.issubdtype(x.dtype, np.floating) or not len(calib):
        return ""
    if job.model is None and job.shared.float_onnx is None:  # QAT's conversion: no float model to run
        return ""
    # the grid TFLite derives from the calibrated input range: asymmetric int8 over [min, max] widened to hold 0
    lo, hi = min(float(np.min(calib)), 0.0), max(float(np.max(calib)), 0.0)
    if hi <= lo:
        return ""
    scale = (hi - lo) / 255
    zero = round(-128 - lo / scale)
    rounded = ((np.clip(np.round(x / scale + zero), -128, 127) - zero) * scale).astype(x.dtype)
    agree = agreement(_float_outputs(job, rounded).reshape(job.reference.shape), job.reference, job.kind)[0]
    if agree > budget.min_agreement - DOOMED_MARGIN:
        return ""
    return (f"cause: the float model itself agrees only {agree:.2%} with its own outputs when just its input is "
            f"rounded to int8's grid (step {scale:.3g}): it amplifies input changes that small, so no int8 model "
            "can meet the budget; keep float16 or dynamic-int8, or make the model less sensitive")


def _float_outputs(job: ExportJob, x: np.ndarray) -> np.ndarray:
    """The float model's outputs on x: the checked float ONNX in ONNX Runtime when this run made one (2-3x
    faster than PyTorch eager on a CNN), else PyTorch."""
    made = job.shared.float_onnx
    if made is not None and made.parity is not None and made.parity.passed:
        from ..onnx import run

        return run(made.path, x)
    from ..onnx import torch_outputs

    return np.concatenate([torch_outputs(job.model, x[i:i + 64]) for i in range(0, len(x), 64)])


def _with_calib(job: ExportJob, pool: np.ndarray, s: Settings) -> ExportJob:
    return dataclasses.replace(job, calib=pool[:s.calib_samples])


def calibrate(saved_model: Path, job: ExportJob) -> bytes:
    """The float TFLite model with each tensor's calibrated range (on job.calib), max pooling's padding fixed."""
    conv = tflite.converter(saved_model, "int8", job)
    conv._experimental_calibrate_only = True  # what QuantizationDebugger does: quantized in a second step
    try:
        with tflite.quiet():
            return _pad_ranges_fixed(conv.convert())
    except CompressError:
        raise
    except Exception as e:  # noqa: BLE001 - a converter error, named in one line
        raise tflite.converter_error(job, "int8", str(e)) from None


def quantize(calibrated: bytes, job: ExportJob, s: Settings, *, debug: bool = False) -> bytes:
    """int8 from a calibrated model: int8 I/O for float inputs (as TFLiteConverter makes it); with
    s.float_layers (output tensor names) those layers stay float, and so do the model's inputs/outputs;
    `debug` adds a NumericVerify op after each quantized layer (the ranking's model)."""
    import tensorflow as tf
    from tensorflow.lite.python import convert

    int8_io = not (s.float_layers or debug)
    in_type = tf.int8 if int8_io and np.issubdtype(np.asarray(job.inputs).dtype, np.floating) else tf.float32
    try:
        with tflite.quiet():
            model = convert.mlir_quantize(calibrated, disable_per_channel=not s.per_channel,
                                          input_data_type=in_type, output_data_type=tf.int8 if int8_io else tf.float32,
                                          enable_numeric_verify=debug, denylisted_nodes=list(s.float_layers) or None)
    except Exception as e:  # noqa: BLE001 - a converter error, named in one line
        raise tflite.converter_error(job, "int8", str(e)) from None
    _check_scales(model)
    return model


def convert_int8(saved_model: Path, job: ExportJob, *, per_channel: bool = True) -> bytes:
    """Full-integer int8 without a budget: tflite.convert(..., "int8") with max pooling's padding fixed."""
    return quantize(calibrate(saved_model, job), job, Settings(len(job.calib), per_channel=per_channel))


def _pad_ranges_fixed(calibrated: bytes) -> bytes:
    """A PADV2 padding with -inf (max pooling) takes its input's calibrated range (module docstring)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    m = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    changed = False
    for g in m.subgraphs:
        for op in g.operators:
            code = m.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.PADV2:
                continue
            src, dst, value = (g.tensors[i] for i in (op.inputs[0], op.outputs[0], op.inputs[2]))
            data = m.buffers[value.buffer].data
            pad = np.frombuffer(bytes(data), np.float32) if data is not None and value.type == 0 else ()
            qi, qo = src.quantization, dst.quantization
            if len(pad) == 1 and pad[0] <= PAD_MINUS_INF and qi is not None and qi.min is not None and qo is not None:
                qo.min, qo.max = np.array(qi.min), np.array(qi.max)
                changed = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m)) if changed else calibrated


def _check_scales(model: bytes) -> None:
    """Fail with the tensor named, not an abort of the process: TFLite's kernels assert on absurd scales."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    for d in it.get_tensor_details():
        scales = d["quantization_parameters"]["scales"]
        if len(scales) and not np.all(np.isfinite(scales) & (scales < 1e9)):
            raise ConverterError(f"TFLite int8: tensor {d['name']!r} got quantization scale {float(np.max(scales)):.3g} "
                                 "(its calibrated range is unbounded); keep that layer in float or use another variant")


def _ranked(calibrated: bytes, job: ExportJob, s: Settings) -> list[tuple[str, float]]:
    """Quantized layers (their output tensors' names), worst first, by RMSE / scale of their int8
    outputs against float on the same input: TF's documented sensitivity measure (~0.29 is plain rounding).

    The debug model runs on the builtin kernels without the default XNNPACK delegate: it mixes int8
    and float copies of every layer, which XNNPACK may refuse to plan, and the ranking needs no speed.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = quantize(calibrated, job, s, debug=True)
    try:
        with tflite.quiet():
            it = Interpreter(model_content=model,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            it.allocate_tensors()
        verify = [op for op in it._get_ops_details() if op["op_name"] == "NumericVerify"]
        (inp,) = it.get_input_details()
        x = tf_route.to_layout(np.asarray(job.calib[:RANK_SAMPLES]), tf_route.layout_of(job))
        squares = np.zeros(len(verify))
        for i in range(len(x)):
            it.set_tensor(inp["index"], x[i:i + 1].astype(inp["dtype"]))
            it.invoke()
            squares += [np.mean(np.square(it.get_tensor(op["outputs"][0]), dtype=np.float64)) for op in verify]
    except (RuntimeError, ValueError) as e:
        raise ConverterError("ranking the layers' int8 error failed on the LiteRT interpreter "
                             f"({' '.join(str(e).split())[:200]}); give a larger --max-accuracy-drop") from None
    made_by = {t: op["op_name"] for op in it._get_ops_details() for t in op["outputs"]}
    scores = []
    for op, sq in zip(verify, squares):
        q = it._get_tensor_details(op["inputs"][0], 0)
        scale = q["quantization_parameters"]["scales"]
        # a pad only copies values (and max pooling's -inf padding differs from int8's by design)
        if len(scale) and scale[0] and made_by.get(op["inputs"][0]) not in ("PAD", "PADV2"):
            # the quantized copy is named after the layer plus one digit (TF's debugger strips it too)
            scores.append((re.sub(r"\d$", "", q["name"]), float(np.sqrt(sq / max(len(x), 1)) / scale[0])))
    return sorted(scores, key=lambda t: -t[1])


def layer_errors(saved_model: Path, job: ExportJob, s: Settings) -> list[tuple[str, float]]:
    """Quantized layers (output tensor names), worst first, by RMSE / scale of their int8 outputs
    against float, calibrated on job.calib."""
    return _ranked(calibrate(saved_model, job), job, s)


def selective(saved_model: Path, job: ExportJob, s: Settings) -> bytes:
    """int8 with the layers in s.float_layers (output tensor names) left in float; float inputs/outputs."""
    return quantize(calibrate(saved_model, job), job, s)
