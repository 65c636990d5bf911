"""The ONNX model in a browser bundle for onnxruntime-web (wasm-only build), checked in Chromium.

Artifacts: `onnx-web:float32` (<bundle>/model/model.onnx) and `web-bundle:ort` (the servable folder);
with `--quantize int8`, the quantize step adds `onnx-web:int8` and `web-bundle:ort-int8` (web-ort-int8/)
through `bundle_int8`, from the browser-safe int8 ONNX.
The ONNX file is the job's ONNX artifact when `--target onnx` ran (targets run in registry order), else
exported here the same way. The runtime is onnxruntime-web's wasm-only build (ort.wasm.min.js +
ort-wasm-simd-threaded.{mjs,wasm}): the all-backend ort.min.js pulls a 28 MB JSEP wasm and was slower.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from compressor.core import feeds
from compressor.core.artifact import Artifact
from compressor.core.parity import Parity

from . import bundle, onnx, tfjs
from .base import ExportJob

NAME = "onnx-web"


def export(job: ExportJob) -> list[Artifact]:
    t0 = time.perf_counter()
    made = job.shared.float_onnx
    if made is None:  # export in the private folder, so that nothing extra lands in the output
        (made,) = onnx.export(dataclasses.replace(job, workdir=job.private_dir()))
    return make_bundle(job, made, "float32", tfjs.bundle_dir(job, "web-ort"), t0)


def bundle_int8(job: ExportJob, int8_web: Artifact) -> list[Artifact]:
    """The browser-safe int8 ONNX (`--quantize int8` with an onnx-web target) in its own servable folder."""
    return make_bundle(job, int8_web, "int8", job.workdir / "web-ort-int8", time.perf_counter())


def make_bundle(job: ExportJob, src: Artifact, variant: str, dest: Path, t0: float) -> list[Artifact]:
    """`onnx-web:<variant>` (<dest>/model/model.onnx) and `web-bundle:ort[-int8]` (the folder)."""
    if dest.exists():
        dest = dest.with_name(dest.name + "-ort")  # --bundle given for tfjs and onnx-web in one run
    (dest / "model").mkdir(parents=True)
    path = dest / "model" / "model.onnx"
    onnx.inline_weights(src.path, path)
    ins, outs = onnx.io_specs(path)
    meta = tfjs.meta(job, "onnxruntime-web", variant, ins, outs)
    bundle.write(dest, runtime="ort", meta=meta, example=job.inputs[:1], expected=feeds.fields(job.reference)[0][0],
                 title=f"edge-compress model (onnxruntime-web{', int8' if variant != 'float32' else ''})",
                 model_file="model/model.onnx")
    stats = bundle.write_manifest(dest, tfjs.bundle_facts(job, "ort", variant, ["model/model.onnx"]))
    extra = {"exporter": src.extra.get("exporter")} if variant == "float32" else {"from": src.name}
    model = Artifact(path=path, format="onnx-web", variant=variant, inputs=ins, outputs=outs, opset=src.opset,
                     convert_seconds=time.perf_counter() - t0, extra=extra)
    web = Artifact(path=dest, format="web-bundle", variant="ort" if variant == "float32" else f"ort-{variant}",
                   inputs=ins, outputs=outs, convert_seconds=time.perf_counter() - t0,
                   extra={"runtime": "onnxruntime-web (wasm)", **stats})
    job.shared.bundles[dest] = web
    return [model, web]


def validate(artifact: Artifact, job: ExportJob) -> Parity:
    return tfjs.validate_in_browser(artifact, job, "nchw")
