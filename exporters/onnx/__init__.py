"""PyTorch -> ONNX: torch.onnx.export, onnx checker, ONNX Runtime graph optimization, parity in ONNX Runtime.

The ONNX target in one place: this module exports and validates, `int8` holds ONNX Runtime's
quantization tools (used by compressor.quantize), `runner` times a model for `compress bench`.
"""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from compressor.core import feeds
from compressor.core.artifact import Artifact, TensorSpec, batch1
from compressor.core.errors import ConverterError
from compressor.core.files import onnx_external_data
from compressor.core.parity import Parity, compare_all
from compressor.core.signature import Flat, forward_names, public_name

from ..base import ExportJob

NAME = "onnx"
TORCHSCRIPT_OPSET = 17  # what onnx2tf handles best; the dynamo exporter keeps its own (newer) default


def input_name(model: torch.nn.Module) -> str:
    """The model's own name for its input (forward's first argument: input_ids, pixel_values), which every
    artifact keeps; a generic one (x, inputs) becomes "input"."""
    names = forward_names(model)
    return public_name(names[0]) if names else "input"


def io_names(model: torch.nn.Module) -> tuple[list[str], list[str]]:
    """The names the ONNX graph gives the inputs and outputs: a model wrapped for several inputs or outputs
    (compressor.core.signature.Flat) knows its own; a plain one takes one input and gives "output"."""
    ins = list(getattr(model, "input_names", None) or [input_name(model)])
    outs = list(getattr(model, "output_names", None) or ["output"])
    return ([public_name(ins[0])] if len(ins) == 1 else ins), outs


def _example_batch(example: torch.Tensor | tuple[torch.Tensor, ...], n: int = 2) -> tuple[torch.Tensor, ...]:
    # torch.export specialises a size-1 dimension, which would fix the batch at 1.
    xs = example if isinstance(example, tuple) else (example,)
    return tuple(x.expand(n, *x.shape[1:]).contiguous() for x in xs)


def _dynamic(model: torch.nn.Module, x: tuple[torch.Tensor, ...], batch: object, seq: bool) -> tuple | None:
    """torch.export's dynamic_shapes follow forward's signature: one entry per parameter, and Flat's
    forward(*xs) has one parameter holding every input. Token inputs (2-D) share one sequence length, whose
    range torch.export infers (AUTO: a model's position table bounds it)."""
    if batch is None and not seq:
        return None
    dims = tuple({**({0: batch} if batch is not None else {}),
                  **({1: torch.export.Dim.AUTO} if seq and t.dim() == 2 else {})} for t in x)
    return (dims,) if isinstance(model, Flat) else dims


def to_onnx(model: torch.nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], path: Path, *,
            opset: int | None = None, exporter: str = "auto", batch: int | None = None, seq: bool = False) -> dict:
    """Write `model` as ONNX with a dynamic batch axis (or fixed at `batch`), and with `seq` a dynamic sequence
    length on every token input (2-D: batch, length); returns how it was made.

    exporter: "dynamo" (torch.export based), "torchscript", or "auto" (dynamo, then TorchScript).
    A TorchScript module can only go through the TorchScript exporter.
    """
    scripted = isinstance(model, torch.jit.ScriptModule) or getattr(model, "scripted", False)
    order = {"auto": ["dynamo", "torchscript"], "dynamo": ["dynamo"], "torchscript": ["torchscript"]}[exporter]
    if scripted:
        order = ["torchscript"]
    errors = []
    static = getattr(model, "static_batch", None) or batch  # a .pt2 program with a fixed batch keeps it
    names, out_names = io_names(model)
    if isinstance(model, Flat) and model.scripted and not model.by_name:
        model = model.inner  # the exporter takes a TorchScript module itself, not inside a traced wrapper
    x = _example_batch(example, static) if static else _example_batch(example)
    # the dynamo exporter logs a warning per missing optional library (torchvision ops); not the user's concern
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    # onnxscript's constant folding logs "Evaluation failed: cannot reshape array ..." on BERT-base and goes on
    logging.getLogger("onnxscript").setLevel(logging.ERROR)
    for how in order:
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                if how == "dynamo":
                    dim = torch.export.Dim("batch", min=1, max=4096)
                    torch.onnx.export(model, x, str(path), dynamo=True, opset_version=opset,
                                      input_names=names, output_names=out_names,
                                      dynamic_shapes=_dynamic(model, x, None if static else dim, seq),
                                      optimize=True, verbose=False)
                else:
                    axes = {n: {**({} if static else {0: "batch"}), **({1: "seq"} if seq and t.dim() == 2 else {})}
                            for n, t in zip(names, x)}
                    axes.update({n: {0: "batch"} for n in out_names if not static})
                    # EVAL folds each BatchNorm into its convolution (PRESERVE kept MobileNetV2's 52 BN nodes,
                    # and onnx2tf ran the graph so far once per BN node: 19.9 s against 12.5 s to convert)
                    torch.onnx.export(model, x, str(path), dynamo=False, opset_version=opset or TORCHSCRIPT_OPSET,
                                      input_names=names, output_names=out_names,
                                      dynamic_axes={n: a for n, a in axes.items() if a} or None,
                                      training=torch.onnx.TrainingMode.EVAL)
            inline_weights(path)
            why = "as asked" if batch else "the .pt2 program was exported with a static batch"
            return {"exporter": how, "opset": opset_of(path), "batch": f"fixed {static} ({why})" if static else "dynamic",
                    **({"sequence": "dynamic"} if seq else {})}
        except OSError:
            raise  # disk full, read-only: the caller reports those, not as an export failure
        except Exception as e:  # noqa: BLE001 - each exporter fails in its own way; keep the reasons
            errors.append(f"{how}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise ConverterError(f"ONNX export failed ({' | '.join(errors)}); check that the model's forward is "
                        "traceable (no data-dependent Python control flow)")


def inline_weights(src: Path, dst: Path | None = None) -> None:
    """One self-contained file (`dst`, default: `src` in place): the dynamo exporter writes weights beside
    the graph (PATH.data), which runtimes such as onnxruntime-web would have to be told about. Models here
    are far below protobuf's 2 GB limit. In place, the side files are removed."""
    import onnx

    files = onnx_external_data(src)
    if not files and dst is None:
        return
    m = onnx.load(str(src), load_external_data=True)  # resolves external data relative to src
    onnx.save(m, str(dst or src), save_as_external_data=False)
    if dst is None:
        for f in files:
            f.unlink(missing_ok=True)


def opset_of(path: Path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))


def optimize(src: Path, dst: Path) -> None:
    """Check the graph, then let ONNX Runtime fold constants and drop redundant nodes.

    BASIC level only: the extended levels write fused ops specific to the CPU provider,
    which onnxruntime-web and other runtimes would not load.
    """
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(src), full_check=True)
    except Exception as e:
        raise ConverterError(f"the exported ONNX graph is invalid ({str(e).splitlines()[0]}); report the model") from e
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(dst)
    so.log_severity_level = 3
    try:
        ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime's own Fail/InvalidGraph
        raise ConverterError(f"ONNX Runtime cannot load the exported graph ({' '.join(str(e).split())[-200:]}); "
                             "report the model") from None
    if not _loads(dst):
        # seen on a static-batch program from the dynamo exporter: ORT writes an optimized file it cannot
        # read back ("Attempt to replace the existing tensor"); the unoptimized graph runs, so ship that
        shutil.copy(src, dst)
    compact(dst)
    onnx.checker.check_model(str(dst))


def _loads(path: Path) -> bool:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any failure means: not this file
        return False
    return True


def compact(path: Path) -> None:
    """Drop per-node debug metadata (the dynamo exporter's stack traces and FX node text, ~1 KB a
    node) and shape annotations: no runtime reads them, and on a small model they are a fifth of the file."""
    import onnx

    m = onnx.load(str(path))
    for n in m.graph.node:
        del n.metadata_props[:]
        n.doc_string = ""
    del m.graph.value_info[:]
    onnx.save(m, str(path))


def io_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)

    def spec(v) -> TensorSpec:
        t = v.type.tensor_type
        dims = tuple(d.dim_param or d.dim_value for d in t.shape.dim)
        return TensorSpec(v.name, dims, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name)

    inits = {i.name for i in m.graph.initializer}
    return [spec(v) for v in m.graph.input if v.name not in inits], [spec(v) for v in m.graph.output]


def write_labels(path: Path, names: tuple[str, ...]) -> None:
    """The class names in the model's metadata_props ("labels": a JSON list), where ONNX tools look."""
    import json

    import onnx

    m = onnx.load(str(path))
    onnx.helper.set_model_props(m, {**{p.key: p.value for p in m.metadata_props}, "labels": json.dumps(list(names))})
    onnx.save(m, str(path))


def input_spec(path: Path) -> tuple[tuple[int, ...], str]:
    """(batch-1 shape, dtype) of the first input, as `compress bench` feeds it."""
    ins, _ = io_specs(path)
    return batch1(ins[0].shape), ins[0].dtype


def export(job: ExportJob) -> list[Artifact]:
    t0 = time.perf_counter()
    raw = job.workdir / "model.raw.onnx"
    how = to_onnx(job.model, job.example, raw, opset=job.options.opset, seq="seq" in job.options.dynamic)
    path = job.workdir / "model.onnx"
    optimize(raw, path)
    raw.unlink()
    if job.class_names:
        write_labels(path, job.class_names)
    ins, outs = io_specs(path)
    made = Artifact(path=path, format="onnx", variant="float32", inputs=ins, outputs=outs, opset=how["opset"],
                    convert_seconds=time.perf_counter() - t0,
                    extra={k: how[k] for k in ("exporter", "batch", "sequence") if k in how})
    job.shared.float_onnx = made  # onnx-web ships it; the TF route falls back on it
    return [made]


def run(path: Path, inputs: np.ndarray, *, batch: int = 256, threads: int = 0) -> np.ndarray:
    """Outputs of an ONNX file in ONNX Runtime (CPU), batch by batch (a fixed-batch model in chunks of its batch:
    the benchmark runner's session does both); several inputs or outputs as packed arrays (core/feeds.py)."""
    from .runner import Session

    sess = Session(path, threads)
    return np.concatenate([sess.run(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])


ONE_BY_ONE = 8  # samples also checked one per call: a dynamic batch must give the same answers at batch 1


def validate(artifact: Artifact, job: ExportJob) -> Parity:
    """Parity on every held-out input at once (a batch of up to 256) and, for the first few, one at a time: a
    graph whose traced shapes fix the batch fails here, not in the user's app."""
    import onnxruntime as ort

    def judged(x: np.ndarray, reference: np.ndarray, labels: np.ndarray | None, batch: int) -> Parity:
        return compare_all(run(artifact.path, x, batch=batch), reference, fmt="onnx", variant=artifact.variant,
                           kind=job.kind, labels=labels, runtime=f"onnxruntime {ort.__version__}")

    whole = judged(job.inputs, job.reference, job.labels, 256)
    batches = sorted({1, min(256, len(job.inputs))})
    if not artifact.extra.get("batch", "dynamic").startswith("dynamic") or len(batches) == 1:
        return whole
    k = min(ONE_BY_ONE, len(job.inputs))
    single = judged(job.inputs[:k], job.reference[:k], None, 1)
    artifact.extra["checked_batches"] = batches
    if not single.passed:
        return single
    if artifact.extra.get("sequence") == "dynamic":  # and at half the sequence length, against PyTorch there
        x, length = shorter(job.inputs[:k])
        p = judged(x, torch_outputs(job.model, x), None, 256)
        artifact.extra["checked_sequence_lengths"] = [length, int(feeds.fields(job.inputs[:1])[0].shape[1])]
        if not p.passed:
            return p
    return whole


def shorter(x: np.ndarray) -> tuple[np.ndarray, int]:
    """The token inputs (2-D fields) cut to half their length (at least 2), the others as they are."""
    named = feeds.as_dict(x)
    length = max(2, next(a.shape[1] for a in named.values() if a.ndim == 2) // 2)
    cut = {n: np.ascontiguousarray(a[:, :length]) if a.ndim == 2 else a for n, a in named.items()}
    return (feeds.pack(cut) if feeds.is_packed(x) else next(iter(cut.values()))), length


@torch.no_grad()
def torch_outputs(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """PyTorch's outputs on `x`, packed as the reference is (several outputs: a field each)."""
    out = model(*[torch.from_numpy(a) for a in feeds.fields(x)])
    tensors = list(out) if isinstance(out, tuple) else [out]
    names = getattr(model, "output_names", None) or ["output"]
    arrays = {n: t.float().numpy() for n, t in zip(names, tensors)}
    return feeds.pack(arrays)
