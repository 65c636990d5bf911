"""The pipeline's quantize step: adds quantized ONNX artifacts next to the float one.

Runs after "export" (it starts from the verified float32 ONNX), before "bench" (so that the
quantized artifacts are timed too). Every artifact it adds passed `require_parity` and carries
its held-out accuracy, its accuracy drop against the float model and its size ratio.
TFLite int8/float16 variants come from exporters/tflite.py, not from here.
"""
from __future__ import annotations

import dataclasses
import shutil
from typing import Any

import exporters
from exporters.base import Artifact, require_parity

from . import cpu
from .config import QAT, StaticInt8
from .onnx import onnx_size


def _configs(cfg: Any, targets: list[str]) -> list[Any]:
    out = []
    if "onnx" in targets:
        out.append(cfg)
    if "onnx-web" in targets and isinstance(cfg, StaticInt8):
        out.append(dataclasses.replace(cfg, runtime="web"))  # the browser-safe variant
    return out


def run(s: Any) -> None:
    """Quantize s.model per s.cfg.quantize into s.workdir; extend s.artifacts and s.sections."""
    from ..train import predict
    from .core import accuracy_fields, quantize

    cfg = s.cfg.quantize
    targets = exporters.expand(",".join(s.cfg.targets))
    configs = _configs(cfg, targets)
    scheme = cpu.choose()
    section: dict[str, Any] = {"config": {"kind": type(cfg).__name__, **dataclasses.asdict(cfg)},
                               "cpu_int8_scheme": scheme.to_dict(), "artifacts": []}
    s.sections["quantization"] = section
    if not configs:
        section["skipped"] = (f"--quantize {type(cfg).__name__} makes ONNX artifacts; targets {targets} have none "
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
                q = quantize(src, c, splits=s.splits, workdir=tmp, teacher=teacher, reference=reference,
                             log=s.console.print)
            a: Artifact = q.artifact
            require_parity(a)
            dst = s.workdir / a.path.name
            a.path.replace(dst)
            a.path = dst
            if float_art is not None:
                # onnx_size: the float export may keep its weights in a side .data file
                a.extra["size_ratio_vs_float32"] = round(onnx_size(a.path) / onnx_size(float_art.path), 4)
            s.artifacts.append(a)
            section["artifacts"].append(a.name)
            p = a.parity
            s.console.print(f"[green]✓[/] {a.name}: accuracy {100 * p.accuracy:.2f}% "
                            f"(drop {p.accuracy_drop_points:+.2f} pt), top-1 agreement {p.top1_agreement:.4f}"
                            if p.accuracy is not None else f"[green]✓[/] {a.name}: top-1 agreement "
                            f"{p.top1_agreement:.4f}")
        if float_art is not None and "accuracy" not in float_art.extra:
            # the float reference measured the same way, so the manifest's rows compare directly
            from exporters.base import compare
            from exporters.onnx import run as ort_run

            from .core import held_out

            ho = held_out(float_art.path, s.splits, tmp, reference)
            p = compare(ort_run(float_art.path, test.x), ho.job, max_abs=None, min_top1=0.0, runtime="onnxruntime")
            float_art.extra.update(accuracy_fields(p, float_art.path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
