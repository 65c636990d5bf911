"""ONNX quantization with ONNX Runtime's tools: static int8 (QDQ), dynamic int8, float16.

Static int8 is written in QDQ form (QuantizeLinear/DequantizeLinear around float ops): ONNX
Runtime fuses it into integer kernels on the CPU, onnxruntime-web runs it in wasm, and other
runtimes can read it. Dynamic int8 writes MatMulInteger/ConvInteger (CPU only).
float16 uses onnxruntime.transformers.float16 (shipped with onnxruntime, nothing extra).
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from compressor.core.budget import Settings
from compressor.core.chromium import node_modules, setup_hint
from compressor.core.errors import CompressError, ConverterError

# the ops whose weights are quantized; these are the "layers" of the sensitivity analysis
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # ORT's quantizer logs a pre-processing hint on every call and prints calibration progress
    log = logging.getLogger()
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        log.setLevel(level)


def calibration_reader(x: np.ndarray, input_name: str, batch: int = 32, equal: bool = False):
    """A CalibrationDataReader over the user's samples, in batches.

    equal=True drops the < batch remainder: the entropy/percentile collectors stack every
    batch's values into one array and fail on a ragged last batch (the count used is recorded).
    """
    from onnxruntime.quantization import CalibrationDataReader

    b = max(1, min(batch, len(x)))
    n = calib_used(len(x), batch, equal)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def get_next(self):
            i = next(self._it, None)
            return None if i is None else {input_name: np.ascontiguousarray(x[i:min(i + b, n)])}

        def rewind(self) -> None:
            self._it = iter(range(0, n, b))

    return Reader()


def calib_used(n: int, batch: int = 32, equal: bool = True) -> int:
    """How many of n calibration samples the reader feeds."""
    b = max(1, min(batch, n))
    return (n // b) * b if equal else n


def _input_name(path: Path) -> str:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    return next(v.name for v in m.graph.input if v.name not in inits)


def weighted_nodes(path: Path) -> list[str]:
    """Names of the nodes whose weights int8 would quantize, in graph order."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    return [n.name for n in m.graph.node if n.op_type in WEIGHTED_OPS and n.name
            and any(i in inits for i in n.input[1:2])]


def static_int8(src: Path, dst: Path, calib: np.ndarray, s: Settings,
                nodes_to_quantize: list[str] | None = None) -> Path:
    """QDQ static int8 of `src` calibrated on `calib[:s.calib_samples]`, written to `dst`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    act, w = {"u8s8": ("uint8", "int8"), "u8u8": ("uint8", "uint8"), "s8s8": ("int8", "int8")}[s.scheme]
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[s.calib_method]
    data = calib[:s.calib_samples]
    if len(data) == 0:
        raise CompressError("no calibration samples; give --data with a training split")
    extra = {"ActivationSymmetric": act == "int8", "WeightSymmetric": True}
    if s.calib_method == "percentile":
        extra["CalibPercentile"] = 99.99
    try:
        with _quiet():
            quantize_static(str(src), str(dst), calibration_reader(data, _input_name(src), equal=s.calib_method != "minmax"),
                            quant_format=QuantFormat.QDQ, per_channel=s.per_channel, reduce_range=s.reduce_range,
                            activation_type=types[act], weight_type=types[w], calibrate_method=method,
                            nodes_to_exclude=list(s.float_layers), nodes_to_quantize=nodes_to_quantize,
                            extra_options=extra)
    except CompressError:
        raise
    except Exception as e:
        raise ConverterError(f"ONNX Runtime static quantization failed ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); try --calib-method minmax") from e
    return dst


def dynamic_int8(src: Path, dst: Path, *, per_channel: bool, reduce_range: bool,
                 op_types: tuple[str, ...]) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    m = onnx.load(str(src))
    # the exporter's shape annotations can disagree with what the quantizer infers after it
    # rewrites Gemm(transB) into MatMulInteger; the quantizer re-infers them anyway
    del m.graph.value_info[:]
    try:
        with _quiet():
            quantize_dynamic(m, str(dst), per_channel=per_channel, reduce_range=reduce_range,
                             weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types))
    except Exception as e:
        raise ConverterError(f"ONNX Runtime dynamic quantization failed ({type(e).__name__}: {e}); "
                            "use --quantize int8 instead") from e
    return dst


def float16(src: Path, dst: Path, *, keep_io_types: bool = True) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with _quiet():
        m = convert_float_to_float16(onnx.load(str(src)), keep_io_types=keep_io_types)
    onnx.save(m, str(dst))
    return dst


def sensitivity(src: Path, calib: np.ndarray, x: np.ndarray, s: Settings, workdir: Path) -> list[tuple[str, float]]:
    """Layers ranked by how much quantizing each one ALONE moves the outputs (most sensitive first).

    Score: mean squared difference of the outputs against the float model on `x`, relative to
    the outputs' mean square, so layers compare on one scale.
    """
    from . import run

    ref = run(src, x)
    scale = float(np.mean(ref.astype(np.float64) ** 2)) or 1.0
    scores = []
    tmp = workdir / "sensitivity.onnx"
    for node in weighted_nodes(src):
        static_int8(src, tmp, calib, s, nodes_to_quantize=[node])
        out = run(tmp, x)
        scores.append((node, float(np.mean((out.astype(np.float64) - ref) ** 2)) / scale))
    tmp.unlink(missing_ok=True)
    return sorted(scores, key=lambda t: -t[1])


def ort_web_dist() -> Path:
    """onnxruntime-web's dist folder in the npm runtimes (COMPRESS_HOME/node_modules), read per call."""
    return node_modules() / "onnxruntime-web" / "dist"


def run_in_ort_web(path: Path, x: np.ndarray, timeout: float = 120) -> np.ndarray:
    """Outputs of an ONNX model in onnxruntime-web's wasm backend, run by Node (the browser's kernels).

    CompressError when node or the npm package is missing, or the model does not run there.
    """
    import json
    import shutil
    import subprocess
    import tempfile

    node = shutil.which("node")
    dist = ort_web_dist()
    if node is None or not (dist / "ort.wasm.min.mjs").is_file():
        raise CompressError(f"the onnxruntime-web check needs node and {dist}; {setup_hint()}")
    with tempfile.TemporaryDirectory() as d:
        inp = Path(d) / "input.f32"
        np.ascontiguousarray(x, dtype=np.float32).tofile(inp)
        script = Path(__file__).with_name("ort_web_run.mjs")
        r = subprocess.run([node, str(script), str(dist), str(path), str(inp), ",".join(map(str, x.shape))],
                           capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConverterError(f"{path.name} does not run in onnxruntime-web ({last[:300]}); use the int8-web variant")
    return np.asarray(json.loads(r.stdout)["outputs"], dtype=np.float32).reshape(len(x), -1)


def op_types(path: Path) -> list[str]:
    import onnx

    return sorted({n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node})


def dequantized(src: Path, dst: Path) -> Path:
    """A float copy of a QDQ model: constant DequantizeLinear folded into float weights (exactly the
    int8 values times their scales) and activation QuantizeLinear->DequantizeLinear pairs removed (a
    pair whose range starts at 0 becomes the ReLU it stands for).

    What a float-only converter (onnx2tf) can read; its int8 conversion then re-quantizes weights that
    already lie on the int8 grid, so quantization-aware training survives the trip.
    """
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    made = {o: n for n in g.node for o in n.output}
    uses: dict[str, list[str]] = {}
    for n in g.node:
        for i in n.input:
            uses.setdefault(i, []).append(n.op_type)
    outputs = {o.name for o in g.output}
    folded, alias, keep = [], {}, []
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in consts:
            q, scale = consts[n.input[0]].astype(np.float32), consts[n.input[1]].astype(np.float32)
            zero = consts[n.input[2]].astype(np.float32) if len(n.input) > 2 and n.input[2] else np.float32(0)
            if scale.ndim == 1 and q.ndim > 1:  # per-channel: broadcast along the node's axis
                axis = next((a.i for a in n.attribute if a.name == "axis"), 1) % q.ndim
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zero = scale.reshape(shape), np.reshape(zero, shape if np.ndim(zero) else ())
            folded.append(numpy_helper.from_array(((q - zero) * scale).astype(np.float32), n.output[0]))
        elif n.op_type == "DequantizeLinear" and getattr(made.get(n.input[0]), "op_type", "") == "QuantizeLinear":
            qn = made[n.input[0]]
            zero = consts.get(qn.input[2]) if len(qn.input) > 2 else None
            if zero is not None and zero.size == 1 and int(zero) == np.iinfo(zero.dtype).min:
                # the pair clamps at 0: that is how QDQ writes a ReLU it fused away; keep the ReLU
                keep.append(helper.make_node("Relu", [qn.input[0]], [n.output[0]], name=f"{n.output[0]}_relu"))
            else:
                alias[n.output[0]] = qn.input[0]
        elif n.op_type != "QuantizeLinear" or n.output[0] in outputs or \
                set(uses.get(n.output[0], [])) != {"DequantizeLinear"}:
            keep.append(n)  # a QuantizeLinear not followed by DequantizeLinear only: refused below

    def real(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name
    for n in keep:
        n.input[:] = [real(i) for i in n.input]
    keep += [helper.make_node("Identity", [real(o)], [o], name=f"{o}_identity") for o in outputs if o in alias]
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in keep):
        raise CompressError(f"{src.name}: a QuantizeLinear/DequantizeLinear that is not a constant weight or a "
                            "Q->DQ pair; the float copy for TFLite cannot be made")
    used = {i for n in keep for i in n.input}
    folded_names = {f.name for f in folded}
    inits = [i for i in g.initializer if i.name in used and i.name not in folded_names]
    del g.node[:], g.initializer[:], g.value_info[:]
    g.node.extend(keep)
    g.initializer.extend(inits + [f for f in folded if f.name in used])
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return dst
