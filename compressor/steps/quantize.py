"""The "quantize" step: adds quantized ONNX artifacts next to the float one (compressor.quantize).

Runs after "export" (it starts from the verified float32 ONNX), before "bench" (so that the
quantized artifacts are timed too). Every artifact it adds passed `require_parity` and carries
its held-out accuracy, its accuracy drop against the float model and its size ratio.
TFLite int8/float16 variants come from exporters/tflite/, not from here; only QAT's TFLite int8
(tflite:qat-int8) is made here, from the QAT ONNX, since the fine-tuned weights exist only after this step.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np

import exporters
from exporters import onnx_web, tf_route
from exporters.onnx import run as ort_run

from ..core.artifact import Artifact, require_parity
from ..core.parity import MEASURE, compare
from ..evaluate import predict
from ..quantize import cpu
from ..quantize.config import QAT, QuantConfig, StaticInt8
from ..quantize.core import accuracy_fields, held_out
from ..quantize.core import quantize as quantize_with
from ..quantize.qat_tflite import from_qat
from .export import check_and_keep, export_job
from .state import State


def _configs(cfg: QuantConfig, targets: list[str]) -> list[QuantConfig]:
    out = []
    if "onnx" in targets or (isinstance(cfg, QAT) and "tflite" in targets):  # QAT's TFLite starts from its ONNX
        out.append(cfg)
    if "onnx-web" in targets and isinstance(cfg, StaticInt8):
        out.append(dataclasses.replace(cfg, runtime="web"))  # the browser-safe variant
    return out


def _qat_tflite(s: State, qat_onnx: Artifact, reference: np.ndarray, tmp: Path) -> Artifact:
    shape = tuple(s.model.example(1).shape)
    layout = s.cfg.export.layout if tf_route.is_image_like(shape) else "nchw"
    with s.console.status("QAT int8 -> TFLite ..."):
        a = from_qat(qat_onnx.path, s.splits, tmp / "tflite", example_shape=shape, layout=layout,
                     reference=reference, max_accuracy_drop=s.cfg.quantize.max_accuracy_drop, log=s.console.print)
    require_parity(a)
    return a


def _web_bundle(s: State, int8_web: Artifact, section: dict) -> None:
    """The int8-web model in its own servable folder (web-ort-int8/), checked in Chromium like the float one."""
    job = export_job(s)
    with s.console.status("bundling the int8 model for onnxruntime-web ..."):
        made = onnx_web.bundle_int8(job, int8_web)

    def kept(a: Artifact) -> None:
        section["artifacts"].append(a.name)
        s.console.print(f"[green]✓[/] {a.name}: top-1 agreement {a.parity.top1_agreement:.4f} in Chromium")
    # the model first: its parity goes into the bundle's manifest
    check_and_keep(s, made, lambda a: onnx_web.validate(a, job), kept, what="{} in Chromium")


def _keep(s: State, a: Artifact, section: dict) -> None:
    """Move a checked artifact into the run's folder and record it (manifest.with_quality adds its size ratio)."""
    folder = s.workdir / ("tflite" if a.format == "tflite" else "")
    folder.mkdir(exist_ok=True)
    dst = folder / a.path.name
    a.path.replace(dst)
    a.path = dst
    s.artifacts.append(a)
    section["artifacts"].append(a.name)
    p = a.parity
    s.console.print(f"[green]✓[/] {a.name}: accuracy {100 * p.accuracy:.2f}% "
                    f"(drop {p.accuracy_drop_points:+.2f} pt), top-1 agreement {p.top1_agreement:.4f}"
                    if p.accuracy is not None else f"[green]✓[/] {a.name}: top-1 agreement {p.top1_agreement:.4f}")


def quantize(s: State) -> None:
    """--quantize: quantize s.model per s.cfg.quantize into s.workdir; extend s.artifacts and s.sections."""
    if s.cfg.quantize is None:
        return
    cfg = s.cfg.quantize
    targets = exporters.expand(",".join(s.cfg.targets))
    configs = _configs(cfg, targets)
    scheme = cpu.choose()
    section: dict[str, Any] = {"config": {"kind": type(cfg).__name__, **dataclasses.asdict(cfg)},
                               "cpu_int8_scheme": scheme.to_dict(), "artifacts": []}
    s.sections["quantization"] = section
    if not configs:
        section["skipped"] = (f"--quantize {type(cfg).__name__} makes ONNX artifacts (QAT also TFLite); targets {targets} have none "
                              "(TFLite/TF.js quantization is done by their exporters)")
        s.console.print(f"[yellow]note[/]: {section['skipped']}")
        return
    test = s.splits.test
    reference = predict(s.model.module, test.x)
    float_art = next((a for a in s.artifacts if a.name == "onnx:float32"), None)
    tmp = s.workdir / ".quantize"
    tmp.mkdir(exist_ok=True)
    try:
        for c in configs:
            if isinstance(c, QAT) and s.cfg.distill is not None:
                # QAT continues the distillation: same temperature and label weight as the distill step
                c = dataclasses.replace(c, temperature=s.cfg.distill.temperature, alpha=s.cfg.distill.alpha)
            src = float_art if float_art is not None and not isinstance(c, QAT) else s.model
            teacher = s.teacher if s.teacher is not s.model else None
            with s.console.status(f"quantizing ({type(c).__name__}) ..."):
                q = quantize_with(src, c, splits=s.splits, workdir=tmp, teacher=teacher, reference=reference,
                                  kind=s.model.task, log=s.console.print)
            a: Artifact = q.artifact
            require_parity(a)
            web = getattr(c, "runtime", None) == "web"
            if "onnx" in targets or web:  # the int8-web ONNX is asked for by onnx-web
                _keep(s, a, section)
            if isinstance(c, QAT) and "tflite" in targets:
                _keep(s, _qat_tflite(s, a, reference, tmp), section)
            if web:
                _web_bundle(s, a, section)
        if float_art is not None and "accuracy" not in float_art.extra:
            # the float reference measured the same way, so the manifest's rows compare directly
            ho = held_out(float_art.path, s.splits, reference, s.model.task)
            p = compare(ort_run(float_art.path, test.x), ho.reference, labels=ho.labels, rule=MEASURE,
                        runtime="onnxruntime", kind=ho.kind)
            float_art.extra.update(accuracy_fields(p, float_art.path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
