"""The ONNX model in a browser bundle for onnxruntime-web (wasm-only build), checked in Chromium.

Artifacts: `onnx-web:float32` (<bundle>/model/model.onnx) and `web-bundle:ort` (the servable folder).
The ONNX file is the job's ONNX artifact when `--target onnx` ran first, else exported here the same way.
The runtime is onnxruntime-web's wasm-only build (ort.wasm.min.js + ort-wasm-simd-threaded.{mjs,wasm}):
the all-backend ort.min.js would pull a 28 MB JSEP wasm and was slower (NOTES.md).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from . import _tf, bundle, onnx, tfjs
from .base import Artifact, ExportJob, Parity

NAME = "onnx-web"
THRESHOLDS: dict[str, tuple[float | None, float]] = {"float32": (onnx.FP32_TOL, 0.99)}


def export(job: ExportJob) -> list[Artifact]:
    t0 = time.perf_counter()
    dest = tfjs.bundle_dir(job, "web-ort")
    if dest.exists():
        dest = dest.with_name(dest.name + "-ort")  # --bundle given for tfjs and onnx-web in one run
    (dest / "model").mkdir(parents=True)
    path = dest / "model" / "model.onnx"
    made = job.artifacts.get("onnx:float32")
    if made is None:  # export in the scratch folder, so that nothing extra lands in the output
        (made,) = onnx.export(dataclasses.replace(job, workdir=_tf.scratch_dir(job)))
    single_file(made.path, path)
    how = {"exporter": made.extra.get("exporter"), "opset": made.opset}
    ins, outs = onnx.io_specs(path)
    meta = tfjs.meta(job, "onnxruntime-web", "float32", ins[0].name, outs[0].name)
    bundle.write(dest, runtime="ort", meta=meta, example=job.inputs[:1], expected=job.reference[0],
                 title="edge-compress model (onnxruntime-web)", model_file="model/model.onnx")
    stats = bundle.write_manifest(dest, tfjs.bundle_facts(job, "ort", "float32", ["model/model.onnx"]))
    model = Artifact(path=path, format="onnx-web", variant="float32", inputs=ins, outputs=outs, opset=how["opset"],
                     convert_seconds=time.perf_counter() - t0, extra={"exporter": how["exporter"]})
    web = Artifact(path=dest, format="web-bundle", variant="ort", inputs=ins, outputs=outs,
                   convert_seconds=time.perf_counter() - t0, extra={"runtime": "onnxruntime-web (wasm)", **stats})
    job.scratch.setdefault("bundles", {})[dest] = web
    return [model, web]


def single_file(src: Path, dst: Path) -> None:
    """Copy an ONNX model with its weights inside: a browser cannot open external-data files beside it."""
    import onnx as onnx_lib

    model = onnx_lib.load(str(src))  # resolves external data relative to src
    onnx_lib.save_model(model, str(dst), save_as_external_data=False)


def validate(artifact: Artifact, job: ExportJob) -> Parity:
    return tfjs.validate_in_browser(artifact, job, THRESHOLDS, "nchw")
