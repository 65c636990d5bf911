"""PyTorch -> TF.js graph model (from onnx2tf's SavedModel), shipped in a browser bundle, checked in Chromium.

tensorflowjs pins an older TensorFlow than the main environment's, so its converter lives in its own
environment (.venv-tfjs: tensorflow-cpu 2.18 + tensorflowjs 4.22, made by `make setup`) and is driven as a
subprocess by `convert_saved_model`. The TF 2.18 converter reads the SavedModel onnx2tf writes under TF 2.21
(checked on the coverage models); it must run with oneDNN graph rewrites off, or grappler fuses LayerNorm
into `_MklLayerNorm`, which TF.js does not have.

Artifacts: `tfjs:<variant>` (the graph model folder <bundle>/model) and `web-bundle:tfjs` (the servable
folder). Parity: the model is loaded by @tensorflow/tfjs (wasm backend) in headless Chromium through the
bundle's own model.js, on the job's real inputs; the bundle's index.html must show PyTorch's prediction.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from compressor.core import chromium, feeds
from compressor.core.artifact import Artifact, TensorSpec, batch1
from compressor.core.errors import CompressError, ConverterError
from compressor.core.parity import Parity, compare, compare_all, page_rule, rule
from compressor.core.registry import check_choice

from . import background, bundle, cache, tf_route, tfjs_graph
from .base import TFJS_QUANT, ExportJob

NAME = "tfjs"
TIMEOUT = 900


def converter() -> Path:
    """tensorflowjs_converter: COMPRESS_TFJS_CONVERTER when set, else COMPRESS_HOME's .venv-tfjs (read per call)."""
    given = os.environ.get("COMPRESS_TFJS_CONVERTER")
    return Path(given) if given else chromium.home() / ".venv-tfjs" / "bin" / "tensorflowjs_converter"


def converter_command(saved_model: Path, out: Path, quant: str | None = None) -> list[str]:
    cmd = [str(converter()), "--input_format=tf_saved_model", "--output_format=tfjs_graph_model",
           "--signature_name=serving_default", "--saved_model_tags=serve"]
    if quant is not None:
        check_choice("TF.js quantization", quant, TFJS_QUANT)
        # `--quantize_float16` alone would swallow the next argument as its value: always give `=*`.
        cmd.append(f"--quantize_{quant}=*")
    return [*cmd, str(saved_model), str(out)]


def start_conversion(saved_model: Path, out: Path, quant: str | None = None) -> background.Started:
    """tensorflowjs_converter started on the SavedModel, writing into `out` (its log beside `out`)."""
    if not converter().exists():
        raise CompressError(f"the TF.js converter {converter()} is missing; {chromium.setup_hint()}, "
                            "or set COMPRESS_TFJS_CONVERTER")
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}
    return background.start(converter_command(saved_model, out, quant), log=out.parent / f".{out.name}.log",
                            timeout=TIMEOUT, what="tensorflowjs_converter", env=env)


def finish_conversion(started: background.Started, out: Path, onnx_path: Path | None = None) -> float:
    """Wait for the converter; a one-line error naming the op (and the ONNX layer it came from) on failure;
    returns the seconds since it started."""
    code, log = background.finish(started)
    started.log.unlink(missing_ok=True)
    if code != 0 or not (out / "model.json").exists():
        unsupported = re.search(r"Error: Unsupported Ops in the model[^\n]*\n([^\n]+)", log)
        if unsupported:
            ops = [o.strip() for o in unsupported.group(1).split(",") if o.strip()]
            node = tf_route.node_for_tf_ops(onnx_path, ops) if onnx_path else None
            where = f" (from {tf_route.describe_node(node)})" if node is not None else ""
            raise ConverterError(f"TF.js has no kernel for TensorFlow op(s) {', '.join(ops)}{where}; "
                                "replace that layer, or use --target onnx-web")
        last = [ln.strip() for ln in log.splitlines() if ln.strip()]
        raise ConverterError(f"tensorflowjs_converter failed ({last[-1][:300] if last else 'no output'})")
    return time.perf_counter() - started.t0


def convert_saved_model(saved_model: Path, out: Path, quant: str | None = None,
                        onnx_path: Path | None = None) -> float:
    """SavedModel -> TF.js graph model (model.json + shards) in `out`, in the foreground; returns the seconds
    taken. `onnx_path` (the graph onnx2tf converted) lets an unsupported-op error name the ONNX node and layer.
    """
    return finish_conversion(start_conversion(saved_model, out, quant), out, onnx_path)


def prepare(job: ExportJob) -> None:
    """Convert in the background as soon as the SavedModel exists (the TFLite target makes it first, then
    converts and checks its variants while this converter runs on the other core); convert_cached collects it."""
    def begin() -> None:
        key = cache_key(job)
        root = cache.root()
        if "tfjs" in job.shared.pending or (key is not None and root is not None and (root / key).exists()):
            return
        try:
            job.shared.pending["tfjs"] = start_conversion(job.shared.saved_model, job.private_dir() / "tfjs",
                                                          job.options.tfjs_quant)
        except CompressError:
            return  # said by convert_cached in its turn

    if job.shared.saved_model is not None:
        begin()
    else:
        job.shared.when_saved_model.append(begin)


def convert_cached(saved_model: Path, out: Path, job: ExportJob) -> dict:
    """convert_saved_model into `out`, from the conversion cache when the same SavedModel, quantization and
    converter were seen before (or collected from the background when prepare started it); returns the
    artifact's cache record and the "seconds" taken."""
    key = cache_key(job)
    started = job.shared.pending.pop("tfjs", None)
    t0 = time.perf_counter() if started is None else started.t0
    meta = cache.fetch(key, out) if started is None else None  # copies, not links: the folder is published
    note = None
    if meta is None:
        if started is not None:
            made = job.private_dir() / "tfjs"
            finish_conversion(started, made, tf_route.tf_onnx(job))
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(made), str(out))
        else:
            convert_saved_model(saved_model, out, job.options.tfjs_quant, tf_route.tf_onnx(job))
        note = cache.store(key, out, time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, **cache.status(key, meta, seconds, note),
            **({"converted": "in the background"} if started is not None else {})}


def cache_key(job: ExportJob) -> str | None:
    """The SavedModel's key + the converter's flags (its command line without paths) + the versions in its
    environment; None when the cache is off or those versions cannot be read (a COMPRESS_TFJS_CONVERTER
    outside a virtualenv)."""
    sm_key = tf_route.saved_model_cache(job).get("key")
    if sm_key is None:
        return None
    venv = converter().parent.parent
    found = cache.versions("tensorflowjs", "tensorflow", "tensorflow-cpu", "tf_keras",
                           path=[str(p) for p in venv.glob("lib/python*/site-packages")])
    if "tensorflowjs" not in found:
        return None
    flags = converter_command(Path("SM"), Path("OUT"), job.options.tfjs_quant)[1:-2]
    return cache.make_key(kind="tfjs", saved_model=sm_key, flags=flags, versions=found,
                          env={"TF_ENABLE_ONEDNN_OPTS": "0"})


def bundle_dir(job: ExportJob, default: str) -> Path:
    return job.workdir / (job.options.bundle or default)


def meta(job: ExportJob, runtime: str, variant: str, ins: list[TensorSpec], outs: list[TensorSpec]) -> dict:
    """model.js's META: the first input and output (the single-tensor keys every bundle has) and, for a model
    with several, `inputs` (name, batch-1 shape, dtype: fed by name) and `outputs` (names)."""
    layout = tf_route.layout_of(job) if runtime == "tfjs" else "nchw"
    examples = tf_route.examples(job)
    first = tuple(tf_route.to_layout(np.zeros(tuple(examples[0].shape), dtype=np.float32), layout).shape)
    ref = feeds.fields(job.reference)[0]
    m = {"runtime": runtime, "inputName": ins[0].name, "outputName": outs[0].name, "inputShape": list(first),
         "outputShape": [1, *ref.shape[1:]], "inputDtype": feeds.fields(job.inputs[:1])[0].dtype.name,
         "layout": layout, "variant": variant,
         "labels": list(job.class_names or ()),  # a classifier's class names, in model.js's META
         "preprocess": job.preprocess}  # an image model's resize/crop/normalisation, for predict(<img>)
    if len(examples) > 1 or len(outs) > 1:
        named = feeds.as_dict(job.inputs[:1], (ins[0].name,))  # one input: the artifact names it
        m["inputs"] = [{"name": _matching(n, [i.name for i in ins]), "data": n, "shape": [1, *a.shape[1:]],
                        "dtype": a.dtype.name} for n, a in named.items()]
        m["outputs"] = [o.name for o in outs]
    return m


def _matching(name: str, names: list[str]) -> str:
    """The artifact's name for the model's input `name` (a converter may add a suffix such as ':0')."""
    return name if name in names else next((n for n in names if name in n), name)


def bundle_facts(job: ExportJob, kind: str, variant: str, model_files: list[str]) -> dict:
    from importlib.metadata import version

    return {"format": f"web-bundle:{kind}", "variant": variant, "model_files": model_files,
            "example": "example.json (the first held-out parity input)",
            "serve": "any static server; COOP/COEP headers for threads (README.md)",
            "made_by": f"edge-compress {version('edge-compress')}"}


def export(job: ExportJob) -> list[Artifact]:
    t0 = time.perf_counter()
    sm = tf_route.saved_model(job)
    shared = job.shared.take_saved_model_seconds()  # when TFLite did not report the SavedModel's time
    variant = job.options.tfjs_quant or "float32"
    dest = bundle_dir(job, "web")
    if dest.exists():
        raise CompressError(f"bundle folder {dest.name} is used twice; give --bundle another name")
    cached = convert_cached(sm, dest / "model", job)
    folded = tfjs_graph.fold_transposes(dest / "model" / "model.json")  # the layout round trips LiteRT folds
    seconds = cached.pop("seconds") + shared
    if shared:  # this artifact reports the SavedModel's time: say whether onnx2tf ran
        cached.update({k: v for k, v in tf_route.saved_model_cache(job).items() if k != "key"})
    spec = _signature(dest / "model" / "model.json")
    m = meta(job, "tfjs", variant, spec[0], spec[1])
    layout = m["layout"]
    bundle.write(dest, runtime="tfjs", meta=m, example=tf_route.to_layout(job.inputs[:1], layout),
                 expected=feeds.fields(job.reference)[0][0], title="edge-compress model (TensorFlow.js)",
                 model_file="model/model.json")
    files = sorted(str(p.relative_to(dest)) for p in (dest / "model").iterdir())
    stats = bundle.write_manifest(dest, bundle_facts(job, "tfjs", variant, files))
    model = Artifact(path=dest / "model", format="tfjs", variant=variant, inputs=spec[0], outputs=spec[1],
                     convert_seconds=seconds, extra={"converter": "onnx2tf (SavedModel) + tensorflowjs_converter "
                                                     "(.venv-tfjs)", "layout": layout, "batch": tf_route.STATIC_BATCH,
                                                     "weight_quantization":
                                                     job.options.tfjs_quant, "files": files,
                                                     "transposes_folded": folded,
                                                     "transpose_ops": tfjs_graph.transpose_count(
                                                         dest / "model" / "model.json"), **cached})
    web = Artifact(path=dest, format="web-bundle", variant="tfjs", inputs=spec[0], outputs=spec[1],
                   convert_seconds=time.perf_counter() - t0, extra={"runtime": "tfjs (wasm)", **stats})
    job.shared.bundles[dest] = web
    return [model, web]


DTYPES = {"DT_FLOAT": "float32", "DT_INT32": "int32", "DT_INT64": "int64"}


def _signature(model_json: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """A TF.js graph model's inputs and outputs, from model.json's signature."""
    import json

    sig = json.loads(model_json.read_text()).get("signature") or {}
    if not sig.get("inputs"):
        raise CompressError(f"{model_json} has no input signature; re-export the TF.js model")

    def specs(d: dict) -> list[TensorSpec]:
        return [TensorSpec(k, tuple(int(x.get("size", -1)) for x in v["tensorShape"].get("dim", [])),
                           DTYPES.get(v.get("dtype"), v.get("dtype", "float32"))) for k, v in d.items()]
    return specs(sig["inputs"]), specs(sig.get("outputs", {}))


def io_specs(folder: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of a TF.js graph model folder (the one with model.json)."""
    return _signature(folder / "model.json")


def input_spec(path: Path) -> tuple[tuple[int, ...], str]:
    """(batch-1 shape, dtype) of the first input of a TF.js graph model folder."""
    ins, _ = io_specs(path)
    return batch1(ins[0].shape), ins[0].dtype


def validate(artifact: Artifact, job: ExportJob) -> Parity:
    return validate_in_browser(artifact, job, tf_route.layout_of(job))


def validate_in_browser(artifact: Artifact, job: ExportJob, layout: str) -> Parity:
    """Model artifacts: every parity input through model.js in Chromium. Bundles: the page's own prediction."""
    if artifact.format == "web-bundle":
        return _validate_page(artifact, job)
    root = next(p for p in artifact.path.parents if (p / "model.js").exists())
    outputs, info = bundle.run_inputs(root, tf_route.to_layout(job.inputs, layout))
    runtime = f"{info['runtime']} {info['backend']} in Chromium"
    if feeds.is_packed(job.reference):
        p = compare_all(_named_like_torch(outputs, artifact, job.reference), job.reference, fmt=artifact.format,
                        variant=artifact.variant, kind=job.kind, runtime=runtime)
    else:
        p = compare(_torch_layout(outputs, artifact, job.reference), job.reference, labels=job.labels,
                    rule=rule(artifact.format, artifact.variant, job.kind), runtime=runtime, kind=job.kind)
    web = job.shared.bundles.get(root)
    if web is not None:  # the bundle's manifest carries its model's parity
        web.extra["model_variant"] = artifact.variant
        web.extra["model_parity"] = p.to_dict()
    return p


def _named_like_torch(flat: np.ndarray, artifact: Artifact, reference: np.ndarray) -> np.ndarray:
    """Several outputs read flat in the browser (a field each, named by the runtime), named and shaped as
    PyTorch's: by name, onnx2tf's output_0, output_1 order, or size (tf_route.match_outputs)."""
    got = feeds.as_dict(flat)
    ref = {n: a.reshape(len(a), -1) for n, a in feeds.as_dict(reference).items()}
    pairs = tf_route.match_outputs(got, ref)
    if artifact.format == "tfjs":
        artifact.extra["output_names"] = {k: n for n, k in pairs.items() if k != n}
    specs = {o.name: o for o in artifact.outputs}
    out = {}
    for name, key in pairs.items():
        spec = specs.get(key)
        one = dataclasses.replace(artifact, outputs=[spec]) if spec is not None else dataclasses.replace(artifact,
                                                                                                         outputs=[])
        y = _torch_layout(got[key], one, reference[name])
        out[name] = y.reshape(reference[name].shape) if y.size == reference[name].size else y
    return feeds.pack({n: out[n] for n in feeds.names(reference)})


def _torch_layout(flat: np.ndarray, artifact: Artifact, reference: np.ndarray) -> np.ndarray:
    """Outputs read flat in the browser, in PyTorch's layout: shaped as the model's signature says, with
    channels moved back first when the TF graph holds them last (recorded as the artifact's output_layout)."""
    dims = tuple(artifact.outputs[0].shape[1:]) if artifact.outputs else ()
    if not dims or not all(isinstance(d, int) and d > 0 for d in dims) or int(np.prod(dims)) != flat[0].size:
        return flat
    y = flat.reshape(len(flat), *dims)
    layout = tf_route.output_layout(y.shape, reference.shape)
    if layout != "nchw":
        artifact.extra["output_layout"] = layout
    return tf_route.to_torch_layout(y, layout)


def _validate_page(artifact: Artifact, job: ExportJob) -> Parity:
    """The bundle as a user gets it: index.html's prediction for example.json against PyTorch's."""
    import json

    got = bundle.page_result(artifact.path)
    model_format = "tfjs" if artifact.variant == "tfjs" else "onnx-web"
    # the page shows the first output; a model with several has it first in PyTorch's order too
    reference = feeds.fields(job.reference)[0]
    kind = job.kind if isinstance(job.kind, str) else job.kind[feeds.names(job.reference)[0]]
    judged = page_rule(rule(model_format, artifact.extra.get("model_variant", "float32"), kind), kind)
    first = dataclasses.replace(artifact, outputs=artifact.outputs[:1])
    p = compare(_torch_layout(np.asarray(got["output"], dtype=np.float32)[None], first, reference),
                reference[:1], kind=kind,
                labels=None if job.labels is None else job.labels[:1], rule=judged, scale=reference,
                runtime=f"{got['runtime']} {got['backend']} in Chromium (index.html)")
    page = {k: got.get(k) for k in ("top1", "expected_top1", "ms", "runtime", "backend", "crossOriginIsolated")}
    artifact.extra["page_check"] = page
    facts = json.loads((artifact.path / "manifest.json").read_text())
    facts = {k: v for k, v in facts.items() if k not in ("bundle_bytes", "bundle_gzip_bytes", "files")}
    facts.update(page_check=page, example_parity=p.to_dict(), model_parity=artifact.extra.get("model_parity"))
    artifact.extra.update(bundle.write_manifest(artifact.path, facts))
    return p
