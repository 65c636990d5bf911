"""PyTorch -> TFLite (LiteRT): onnx2tf's SavedModel, then the TFLite converter once per variant.

Variants (ExportOptions.variants picks a subset; default: all):
    float32        the reference conversion
    float16        float16 weights (dequantized at load), float I/O
    dynamic-int8   int8 weights, float activations computed with dynamic quantization, float I/O
    int8           full integer: int8 weights and activations, int8 I/O for float inputs, calibrated on
                   `--calib N` training samples (integer inputs such as tokens stay as they are)
    int16x8        int16 activations / int8 weights (more exact than int8; reference kernels, slower)
Every variant must load on the *builtin* LiteRT interpreter: a Select-TF (Flex) op is an error naming the
operator and the layer, not a file that fails on the phone.

The TFLite target in one place: this module converts and validates, `int8` holds the accuracy budget of
full-integer int8 (and the tools compressor.quantize uses for QAT), `runner` times a model for
`compress bench`. The SavedModel both TFLite and TF.js start from is made by exporters/tf_route.py.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from compressor.core import feeds
from compressor.core.artifact import Artifact, TensorSpec, batch1
from compressor.core.errors import BudgetError, CompressError, ConverterError
from compressor.core.parity import Parity, compare_all

from .. import cache, tf_route
from ..base import TFLITE_VARIANTS, ExportJob

NAME = "tflite"
VARIANTS = TFLITE_VARIANTS  # names checked by ExportOptions
DEFAULT_VARIANTS = VARIANTS[:4]  # int16x8 is experimental in TFLite: only when asked for


BATCH = tf_route.STATIC_BATCH


def variants_of(job: ExportJob) -> tuple[str, ...]:
    """The variants asked for in ExportOptions.variants (--variants), or the default set."""
    return job.options.variants or DEFAULT_VARIANTS


def representative(job: ExportJob) -> Callable[[], Iterator[list[np.ndarray] | dict[str, np.ndarray]]]:
    """The calibration samples one at a time, as the converter takes them (several inputs: by name)."""
    if feeds.is_packed(job.calib):
        named = {k: (a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a)
                 for k, a in feeds.as_dict(job.calib).items()}

        def by_name() -> Iterator[dict[str, np.ndarray]]:
            for i in range(len(job.calib)):
                yield {k: a[i:i + 1] for k, a in named.items()}
        return by_name
    x = tf_route.to_layout(np.asarray(job.calib), tf_route.layout_of(job))
    if np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)

    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(len(x)):
            yield [x[i:i + 1]]
    return gen


def float_inputs(job: ExportJob) -> bool:
    """Every input is float (then a full-integer model takes int8 inputs; token ids stay integers)."""
    return all(np.issubdtype(a.dtype, np.floating) for a in feeds.fields(job.inputs[:1]))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The converter's C++ side prints to fds 1 and 2 ("fully_quantize: ..."); keep the console clean."""
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()):
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def converter(saved_model: Path, variant: str, job: ExportJob, *, per_channel: bool = True):
    """The TFLite converter for one variant of the SavedModel, builtin ops only (not run yet)."""
    with quiet():  # TF's import and the SavedModel load log CUDA/oneDNN notices on fd 2
        import tensorflow as tf

        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # never Select-TF (Flex) ops
    if variant != "float32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if not per_channel:  # per-tensor weights: the accuracy budget's fallback may ask for them
        conv._experimental_disable_per_channel = True
    if variant == "float16":
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        conv.representative_dataset = representative(job)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if float_inputs(job):
            conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif variant == "int16x8":
        if not float_inputs(job):
            raise CompressError("TFLite int16x8 needs float model inputs (the converter cannot calibrate "
                                "integer inputs such as token ids); use the int8 variant")
        conv.representative_dataset = representative(job)
        # ops without a 16x8 kernel (e.g. HARD_SWISH) stay float rather than failing the variant
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                                          tf.lite.OpsSet.TFLITE_BUILTINS]
    return conv


def convert(saved_model: Path, variant: str, job: ExportJob, *, per_channel: bool = True) -> bytes:
    """One TFLite variant of the SavedModel, builtin ops only."""
    conv = converter(saved_model, variant, job, per_channel=per_channel)
    try:
        with quiet():
            return conv.convert()
    except Exception as e:  # noqa: BLE001 - ConverterError and friends; turned into one line below
        raise converter_error(job, variant, str(e)) from None


def convert_cached(saved_model: Path, variant: str, job: ExportJob, path: Path) -> dict:
    """convert() written to `path`, from the conversion cache when the same SavedModel, variant, calibration
    data and converter were seen before; returns the artifact's cache record."""
    key = variant_cache_key(variant, job)
    t0 = time.perf_counter()
    got = cache.fetch_bytes(key, "model.tflite")
    note = None
    if got is None:
        data = convert(saved_model, variant, job)
        note = cache.store_bytes(key, "model.tflite", data, time.perf_counter() - t0)
    else:
        data = got[0]
    path.write_bytes(data)
    return cache.status(key, got[1] if got else None, time.perf_counter() - t0, note)


def variant_cache_key(variant: str, job: ExportJob) -> str | None:
    """The SavedModel's key + the variant + what the converter is given (calibration data for the calibrated
    variants, this module's source for its settings) + TensorFlow's version; None when the cache is off."""
    sm_key = tf_route.saved_model_cache(job).get("key")
    if sm_key is None:
        return None
    calib = variant in ("int8", "int16x8")
    return cache.make_key(kind="tflite", saved_model=sm_key, variant=variant, per_channel=True,
                          calib=cache.array_digest(np.asarray(job.calib)) if calib else None,
                          layout=tf_route.layout_of(job), float_inputs=float_inputs(job),
                          source=cache.files_digest([Path(__file__)]), versions=cache.versions("tensorflow"))


def converter_error(job: ExportJob, variant: str, text: str) -> CompressError:
    ops = sorted(set(re.findall(r"'?tf\.(\w+)'? op", text)) | set(re.findall(r"\btf\.(\w+)\s*\{", text)))
    node = tf_route.node_in_text(tf_route.tf_onnx(job), text) or tf_route.node_for_tf_ops(tf_route.tf_onnx(job), ops)
    where = f" in {tf_route.describe_node(node)}" if node is not None else ""
    if ops:
        return ConverterError(f"TFLite {variant}: TensorFlow op(s) {', '.join(ops)}{where} have no builtin TFLite "
                             "kernel (they would need Select-TF/Flex); replace that layer, or use --target onnx")
    first = next((ln.strip() for ln in text.splitlines() if "error" in ln.lower()), text.strip()[:200])
    return ConverterError(f"TFLite {variant} conversion failed{where}: {first[:300]}; try another variant")


def interpreter(path: Path, threads: int | None = None):
    """A builtin-ops LiteRT interpreter; a model that needs Flex ops fails here with the ops named."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with quiet():  # "INFO: Created TensorFlow Lite XNNPACK delegate" on fd 2
            it = Interpreter(model_path=str(path), num_threads=threads)
            it.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        flex = sorted(set(re.findall(r"Flex\w+", str(e))))
        raise ConverterError(f"{path.name} does not run on the builtin LiteRT interpreter "
                            f"({', '.join(flex) or str(e).splitlines()[0]}); replace that layer") from None
    return it


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer) and scale:  # quantized input: real -> int with the model's params
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if np.issubdtype(detail["dtype"], np.integer) and scale:
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def run(path: Path, inputs: np.ndarray, layout: str = "nchw", batch: int = 1) -> np.ndarray:
    """Outputs of a .tflite file on the builtin interpreter, `batch` samples per call (the input resized when
    that is not the file's batch); several inputs or outputs go by the signature's names, as packed arrays
    (compressor/core/feeds.py)."""
    it = interpreter(path)
    if len(it.get_input_details()) != 1 or len(it.get_output_details()) != 1:
        return _run_named(it, path, inputs, batch)
    x = tf_route.to_layout(np.asarray(inputs), layout)
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        inp = it.get_input_details()[0]
        if tuple(inp["shape"]) != chunk.shape:
            it.resize_tensor_input(inp["index"], list(chunk.shape))
            it.allocate_tensors()
        it.set_tensor(inp["index"], quantize_input(chunk, inp))
        try:
            it.invoke()
        except RuntimeError as e:  # a kernel refusing its quantized inputs, e.g. a DIV by a zero-point
            raise ConverterError(f"{path.name} failed on the LiteRT interpreter ({_failed_node(it, str(e))}); "
                                "this variant does not suit the model: choose other --variants") from None
        out = it.get_output_details()[0]
        outs.append(dequantize_output(it.get_tensor(out["index"]), out))
    return np.concatenate(outs)


def _run_named(it, path: Path, inputs: np.ndarray, batch: int = 1) -> np.ndarray:
    """Several inputs or outputs: fed and read by the serving signature's names (onnx2tf keeps the ONNX ones)."""
    runner = it.get_signature_runner()
    in_details, out_details = runner.get_input_details(), runner.get_output_details()
    given = feeds.as_dict(inputs, tuple(in_details))
    missing = [n for n in in_details if n not in given]
    if missing:
        raise ConverterError(f"{path.name} takes inputs named {', '.join(in_details)}; the data has "
                            f"{', '.join(given)}")
    outs: dict[str, list[np.ndarray]] = {n: [] for n in out_details}
    for i in range(0, len(inputs), batch):
        try:  # the runner resizes its inputs to the batch given
            got = runner(**{n: quantize_input(given[n][i:i + batch], d) for n, d in in_details.items()})
        except (RuntimeError, ValueError) as e:
            raise ConverterError(f"{path.name} failed on the LiteRT interpreter ({' '.join(str(e).split())[:200]})"
                                 ) from None
        for n, d in out_details.items():
            outs[n].append(dequantize_output(got[n], d))
    return feeds.pack({n: np.concatenate(v) for n, v in outs.items()})


def _failed_node(it, message: str) -> str:
    """'Node number 62 (DIV) failed' -> the op and the tensor it writes (its name carries the layer)."""
    m = re.search(r"Node number (\d+) \((\w+)\)", message)
    if not m:
        return " ".join(message.split())[:200]
    try:
        op = it._get_op_details(int(m.group(1)))
        name = it._get_tensor_details(op["outputs"][0], 0)["name"]
    except Exception:  # noqa: BLE001 - naming the tensor is a courtesy
        name = "?"
    return f"operator {m.group(2)} writing {name!r} rejected its quantized inputs"


def io_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs, named as an app calls them: by the serving signature's names (input_ids), not the
    tensors' (serving_default_input_ids:0)."""
    it = interpreter(path)

    def spec(name: str, d: dict) -> TensorSpec:
        shape = d.get("shape_signature")
        shape = d["shape"] if shape is None or len(shape) == 0 else shape
        return TensorSpec(name, tuple(int(s) for s in shape), np.dtype(d["dtype"]).name)

    if not it.get_signature_list():  # a model without a signature: the tensors' own names
        return ([spec(d["name"], d) for d in it.get_input_details()],
                [spec(d["name"], d) for d in it.get_output_details()])
    runner = it.get_signature_runner()
    return ([spec(n, d) for n, d in runner.get_input_details().items()],
            [spec(n, d) for n, d in runner.get_output_details().items()])


def input_spec(path: Path) -> tuple[tuple[int, ...], str]:
    """(batch-1 shape, dtype) of the first input, as `compress bench` feeds it: a quantized-input model is
    fed float data, which the runner quantizes as an app would."""
    ins, _ = io_specs(path)
    dtype = "float32" if np.issubdtype(np.dtype(ins[0].dtype), np.integer) else ins[0].dtype
    return batch1(ins[0].shape), dtype


def prepare(job: ExportJob) -> None:
    """onnx2tf started in the background while earlier targets (ONNX) export and check."""
    tf_route.prefetch_saved_model(job)


def export(job: ExportJob) -> list[Artifact]:
    variants = variants_of(job)  # a wrong name fails before the slow conversion
    with quiet():  # while onnx2tf runs on the other core: TensorFlow's import (~4 s) is off the critical path
        import tensorflow  # noqa: F401
    sm = tf_route.saved_model(job)
    shared = job.shared.take_saved_model_seconds() if "float32" in variants else 0.0
    saved_model_cache = {k: v for k, v in tf_route.saved_model_cache(job).items() if k != "key"}
    folder = job.workdir / "tflite"
    folder.mkdir(exist_ok=True)
    made = []
    for variant in variants:
        path = folder / f"model_{variant.replace('-', '_')}.tflite"
        try:
            made.append(_variant(job, sm, variant, path, shared, saved_model_cache))
        except (BudgetError, ConverterError) as e:
            if job.options.variants or variant == "float32":  # asked for by name, or the reference: the run fails
                raise
            # one of the default reduced-precision variants: skipped with the reason, the others still ship
            lines = str(e).splitlines()
            job.shared.skipped[f"tflite:{variant}"] = lines[0] + (" " + lines[-1] if len(lines) > 1 else "")
            path.unlink(missing_ok=True)
    return made


def _variant(job: ExportJob, sm: Path, variant: str, path: Path, shared: float, saved_model_cache: dict) -> Artifact:
    """One TFLite variant converted (the int8 one within the accuracy budget) and described."""
    t1 = time.perf_counter()
    budget = {}
    if variant == "int8" and job.options.max_accuracy_drop is not None and feeds.is_packed(job.reference):
        # the budget's search judges one output; several are held to their parity rules alone
        budget = {"budget": f"not applied: the model has {len(feeds.names(job.reference))} outputs, each held "
                            "to its parity rule"}
        budget.update(convert_cached(sm, variant, job, path))
    elif variant == "int8" and job.options.max_accuracy_drop is not None:
        budget = _int8_within_budget(job, sm, path)  # a search over settings: not cached
    else:
        budget = convert_cached(sm, variant, job, path)
    if job.class_names:
        attach_labels(path, job.class_names)
    ops = tf_route.graph_ops(path)
    ins, outs = io_specs(path)
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return Artifact(
        path=path, format="tflite", variant=variant, inputs=ins, outputs=outs,
        convert_seconds=time.perf_counter() - t1 + (shared if variant == "float32" else 0.0),
        extra={"converter": "onnx2tf (SavedModel) + tf.lite.TFLiteConverter", "layout": tf_route.layout_of(job),
               "batch": BATCH, **(saved_model_cache if variant == "float32" else {}),
               "calibration_samples": len(job.calib) if variant in ("int8", "int16x8") else 0,
               **tf_route.transpose_stats(ops), "op_counts": dict(sorted(counts.items())), **budget,
               **({"labels": "labels.txt packed in the .tflite (zip)"} if job.class_names else {})})


def attach_labels(path: Path, names: tuple[str, ...]) -> None:
    """labels.txt packed into the .tflite as LiteRT's metadata tools pack associated files: a zip archive
    after the flatbuffer, which the interpreter ignores and `zipfile` reads."""
    import zipfile

    with zipfile.ZipFile(path, "a") as z:
        z.writestr("labels.txt", "".join(f"{n}\n" for n in names))


def _int8_within_budget(job: ExportJob, saved_model: Path, path: Path) -> dict:
    """Full-integer int8 held to the accuracy budget (more calibration samples while it breaks it)."""
    from compressor.core.budget import AccuracyBudget

    from .int8 import int8_within_budget

    budget = AccuracyBudget(job.options.max_accuracy_drop, job.options.min_agreement)
    pool = job.calib if job.calib_pool is None else job.calib_pool
    out = int8_within_budget(job, saved_model, pool, budget)
    shutil.move(out.artifact, path)
    chosen = out.chosen.to_dict()["settings"]
    return {"budget": dataclasses.asdict(budget), "chosen_by": out.chosen.step, "settings": chosen,
            "calibration_samples": out.chosen.settings.calib_samples, "float_layers": chosen["float_layers"],
            "trials": [t.to_dict() for t in out.trials]}


def runtime_name() -> str:
    from importlib.metadata import version

    return f"ai-edge-litert {version('ai-edge-litert')} (builtin ops)"


def outputs_like_torch(path: Path, job: ExportJob, inputs: np.ndarray | None = None,
                       batch: int = 1) -> tuple[np.ndarray, str]:
    """The .tflite's outputs on job.inputs in PyTorch's layout, and the layout the file holds them in
    (several outputs: packed, named as the model names them, each moved back to PyTorch's layout)."""
    outputs = run(path, job.inputs if inputs is None else inputs, tf_route.layout_of(job), batch)
    if not feeds.is_packed(job.reference):
        layout = tf_route.output_layout(outputs.shape, job.reference.shape)
        return tf_route.to_torch_layout(outputs, layout), layout
    got = feeds.as_dict(outputs)
    named = {n: got[k] for n, k in tf_route.match_outputs(got, feeds.as_dict(job.reference)).items()}
    layouts = {n: tf_route.output_layout(a.shape, job.reference[n].shape) for n, a in named.items()}
    moved = {n: tf_route.to_torch_layout(a, layouts[n]) for n, a in named.items()}
    layout = "nhwc" if "nhwc" in layouts.values() else "nchw"
    return feeds.pack({n: moved[n] for n in feeds.names(job.reference)}), layout


def validate(artifact: Artifact, job: ExportJob) -> Parity:
    outputs, layout = outputs_like_torch(artifact.path, job)
    if feeds.is_packed(job.reference) and any(o.name not in feeds.names(job.reference) for o in artifact.outputs):
        # the TFLite signature names outputs output_0, output_1 (onnx2tf): say which is which
        got = {o.name: np.zeros((1, *o.shape[1:])) for o in artifact.outputs}
        pairs = tf_route.match_outputs(got, feeds.as_dict(job.reference[:1]))
        artifact.extra["output_names"] = {k: n for n, k in pairs.items()}
    if layout != "nchw":  # recorded: an app reads the output in this layout
        artifact.extra["output_layout"] = layout
    artifact.extra["batch"] = _batch(artifact, job)
    return compare_all(outputs, job.reference, fmt="tflite", variant=artifact.variant, kind=job.kind,
                       labels=job.labels, runtime=runtime_name())


RESIZED = 8  # the larger batch a resizable model is checked at


def _batch(artifact: Artifact, job: ExportJob) -> str:
    """Whether an app may resize the input's batch (LiteRT resize_tensor_input): checked at batch RESIZED
    against PyTorch, else the reason it stays at 1."""
    k = min(RESIZED, len(job.inputs))
    if k < 2:
        return BATCH
    try:
        outputs, _ = outputs_like_torch(artifact.path, job, job.inputs[:k], batch=k)
        p = compare_all(outputs, job.reference[:k], fmt="tflite", variant=artifact.variant, kind=job.kind,
                        runtime=runtime_name())
    except (CompressError, RuntimeError, ValueError) as e:
        return f"fixed 1 (resizing the batch to {k} fails: {' '.join(str(e).split())[:120]})"
    if not p.passed:
        return f"fixed 1 (at batch {k} the outputs differ: {p.failure()})"
    return f"resizable: checked at batch 1 and {k} (resize_tensor_input)"


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before tensorflow is imported by convert()
