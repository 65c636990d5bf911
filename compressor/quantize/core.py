"""`quantize(model_or_artifact, config, ...)`: one verb, dispatching on the config's type.

Every result is an `Artifact` checked on the held-out split: accuracy, accuracy drop against
the float model (percentage points), top-1 agreement with it, size, and for static int8 the
budget trials. Parity is judged by compressor.core.parity (its rule for the variant, with the
config's agreement floor); int8 variants on agreement, not absolute difference, since integer
rounding moves logits by design.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exporters.onnx import compact, inline_weights, io_specs, optimize, run, to_onnx
from exporters.onnx import int8 as q

from ..core.artifact import Artifact
from ..core.budget import (
    AccuracyBudget,
    Measure,
    Outcome,
    Settings,
    Trial,
    default_stages,
    judge,
    search,
    table,
)
from ..core.errors import BudgetError, CompressError, ParityError
from ..core.parity import Parity, agreement, compare, rule
from ..data import Splits
from ..loading import LoadedModel
from . import cpu
from .config import CALIB_METHODS, QAT, DynamicInt8, Fp16, QuantConfig, StaticInt8


@dataclass
class Quantized:
    artifact: Artifact
    trials: list[Trial] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class HeldOut:
    """The float model's outputs on the held-out split: what every quantized artifact is judged against."""

    inputs: np.ndarray  # the held-out split's inputs
    reference: np.ndarray  # the float model's outputs on them
    labels: np.ndarray | None  # their classes (None: unlabelled data, or not a classifier)
    kind: str = "logits"  # the output's kind: what "agreement" means (compressor.core.parity)

    @property
    def reference_accuracy(self) -> float | None:
        if self.labels is None:
            return None
        return float((self.reference.argmax(1) == self.labels).mean())

    def measure(self, outputs: np.ndarray) -> Measure:
        outputs = outputs.reshape(self.reference.shape)
        acc = None if self.labels is None else float((outputs.argmax(1) == self.labels).mean())
        return Measure(acc, agreement(outputs, self.reference, self.kind)[0])


def held_out(float_onnx: Path, splits: Splits, reference: np.ndarray | None = None, kind: str = "logits") -> HeldOut:
    x = splits.test.x
    labels = splits.test.y if kind == "logits" else None
    return HeldOut(x, run(float_onnx, x) if reference is None else reference, labels, kind)


def float_onnx_of(model_or_artifact: Any, workdir: Path) -> Path:
    """A float32 ONNX file for the input: an ONNX Artifact/path as is, a torch module exported."""
    if isinstance(model_or_artifact, Artifact):
        if model_or_artifact.format != "onnx" or model_or_artifact.variant != "float32":
            raise CompressError(f"quantize needs the float32 ONNX artifact, got {model_or_artifact.name}; "
                                "export with --target onnx first")
        return model_or_artifact.path
    if isinstance(model_or_artifact, (str, Path)):
        p = Path(model_or_artifact)
        if p.suffix != ".onnx" or not p.is_file():
            raise CompressError(f"{p} is not an .onnx file; pass a float32 ONNX file or a torch module")
        return p
    lm = model_or_artifact if isinstance(model_or_artifact, LoadedModel) else None
    module = lm.module if lm else model_or_artifact
    example = lm.example(1) if lm else None
    if example is None:
        shape = getattr(module, "input_shape", None)
        if shape is None:
            raise CompressError("cannot tell the model's input shape; pass a LoadedModel or an ONNX file")
        import torch

        example = torch.zeros(*shape)
    raw, path = workdir / "model.raw.onnx", workdir / "model.float.onnx"
    to_onnx(module.eval(), example, raw)
    optimize(raw, path)
    raw.unlink()
    inline_weights(path)
    return path


def finish(path: Path, variant: str, ho: HeldOut, *, min_top1: float, t0: float, extra: dict[str, Any]) -> Artifact:
    """The artifact with its parity (held-out split: the variant's rule, with the config's agreement floor
    `min_top1`) and the manifest's per-artifact figures."""
    import onnxruntime as ort


    compact(path)
    ins, outs = io_specs(path)
    judged = dataclasses.replace(rule("onnx", variant, ho.kind), min_top1=min_top1)
    parity = compare(run(path, ho.inputs), ho.reference, labels=ho.labels, rule=judged, kind=ho.kind,
                     runtime=f"onnxruntime {ort.__version__}")
    a = Artifact(path=path, format="onnx", variant=variant, inputs=ins, outputs=outs,
                 convert_seconds=time.perf_counter() - t0, parity=parity)
    a.extra.update(extra)
    a.extra.update(accuracy_fields(parity, path))
    return a


def accuracy_fields(p: Parity, path: Path) -> dict[str, Any]:
    return {"accuracy": p.accuracy, "accuracy_drop_points": p.accuracy_drop_points,
            "top1_agreement": p.top1_agreement, "held_out_samples": p.n_samples}


def scheme_for(cfg: StaticInt8) -> cpu.Int8Scheme:
    if cfg.runtime == "web":
        chosen = cpu.web() if cfg.scheme == "auto" else cpu.explicit(cfg.scheme, bool(cfg.reduce_range))
    elif cfg.scheme == "auto":
        chosen = cpu.choose()
    else:
        chosen = cpu.explicit(cfg.scheme, bool(cfg.reduce_range))
    if cfg.reduce_range is not None and cfg.reduce_range != chosen.reduce_range:
        chosen = cpu.Int8Scheme(chosen.activations, chosen.weights, cfg.reduce_range, chosen.reason +
                                f"; reduce_range={cfg.reduce_range} chosen explicitly")
    return chosen


def static(src: Path, cfg: StaticInt8, splits: Splits, workdir: Path, ho: HeldOut,
           log: Callable[[str], None]) -> Quantized:
    t0 = time.perf_counter()
    scheme = scheme_for(cfg)
    calib = splits.train.x
    tag = "int8-web" if cfg.runtime == "web" else "int8"
    dst = workdir / f"model.{tag}.onnx"
    tries = workdir / f".{tag}-tries"
    tries.mkdir(exist_ok=True)
    initial = Settings(min(cfg.calib_samples, len(calib)), cfg.calib_method, cfg.per_channel, scheme.name,
                       scheme.reduce_range, tuple(cfg.nodes_to_exclude))
    counter = iter(range(10_000))

    def make(s: Settings) -> Path:
        return q.static_int8(src, tries / f"try{next(counter)}.onnx", calib, s)

    sens_x = (splits.val.x if len(splits.val) else splits.train.x)[:256]
    ranked: dict[Settings, list[tuple[str, float]]] = {}

    def sensitivity(s: Settings) -> list[str]:
        key = Settings(s.calib_samples, s.calib_method, s.per_channel, s.scheme, s.reduce_range)
        if key not in ranked:
            log(f"measuring per-layer sensitivity ({len(q.weighted_nodes(src))} layers) ...")
            ranked[key] = q.sensitivity(src, calib, sens_x, key, tries)
        return [n for n, _ in ranked[key]]

    budget = AccuracyBudget(cfg.max_accuracy_drop, cfg.min_agreement)
    stages = default_stages(max_calib=len(calib), methods=CALIB_METHODS, sensitivity=sensitivity,
                            max_float_layers=cfg.max_float_layers) if cfg.fallback else []
    try:
        out: Outcome = search(initial, make, lambda p: ho.measure(_run(p, ho)), budget, ho.reference_accuracy,
                              stages=stages, log=log, what=f"onnx {tag}")
        Path(out.artifact).replace(dst)
    finally:
        shutil.rmtree(tries, ignore_errors=True)  # the other trials' files: never part of the output
    chosen = out.chosen.settings
    info = {"method": "static", "format": "QDQ", "runtime": cfg.runtime, "int8_scheme": scheme.to_dict(),
            "settings": out.chosen.to_dict()["settings"], "fell_back": out.fell_back,
            "chosen_by": out.chosen.step, "budget": asdict(budget),
            "calib_samples_used": q.calib_used(min(chosen.calib_samples, len(calib)),
                                                       equal=chosen.calib_method != "minmax"),
            "trials": [t.to_dict() for t in out.trials], "ops": q.op_types(dst)}
    if ranked:
        info["sensitivity"] = [{"layer": n, "score": round(v, 6)} for n, v in next(iter(ranked.values()))]
    a = finish(dst, tag, ho, min_top1=cfg.min_agreement, t0=t0, extra={"quantization": info})
    if cfg.runtime == "web":
        a.extra["ort_web_check"] = web_check(dst, ho)
    return Quantized(a, out.trials, info)


def web_check(path: Path, ho: HeldOut, n: int = 64) -> dict[str, Any]:
    """Run the browser-safe variant in onnxruntime-web's wasm kernels (Node) against ONNX Runtime CPU.

    A model that does not load there is an error; a machine without node is recorded as unchecked.
    """
    if not shutil.which("node") or not (q.ort_web_dist() / "ort.wasm.min.mjs").is_file():
        return {"checked": False, "why": f"node or {q.ort_web_dist()} missing (scripts/setup.sh --browser)"}
    x = ho.inputs[:n]
    web = q.run_in_ort_web(path, x)
    shape = (len(x), *ho.reference.shape[1:])
    cpu_out = _run(path, ho)[:n].reshape(shape)
    web = web.reshape(shape)
    agree = agreement(web, cpu_out, ho.kind)[0]
    if agree < 0.99:
        path.unlink(missing_ok=True)
        raise ParityError(f"{path.name} gives other answers in onnxruntime-web than in ONNX Runtime CPU (top-1 "
                            f"agreement {agree:.3f} on {len(x)} inputs); nothing was written - report the model")
    return {"checked": True, "runtime": "onnxruntime-web wasm (node)", "samples": len(x),
            "max_abs_diff_vs_ort_cpu": float(np.abs(web - cpu_out).max()), "top1_agreement_vs_ort_cpu": agree}


def _run(path: Path, ho: HeldOut) -> np.ndarray:
    return run(path, ho.inputs)


def judge_once(path: Path, t: Trial, m: Measure, ho: HeldOut, budget: AccuracyBudget, *, what: str, fix: str) -> Trial:
    """A method with no settings to fall back on: its one trial judged; over budget, `path` is deleted
    and the error shows the trial."""
    t.accuracy, t.agreement = m.accuracy, m.agreement
    t.drop_points, t.ok = judge(m, ho.reference_accuracy, budget)
    if not t.ok:
        path.unlink(missing_ok=True)
        raise BudgetError(f"{what} breaks the accuracy budget (drop <= {budget.max_accuracy_drop} "
                            f"points, agreement >= {budget.min_agreement}):\n{table([t])}\n{fix}")
    return t


def checked(path: Path, variant: str, budget: AccuracyBudget, ho: HeldOut, t0: float, info: dict) -> Quantized:
    """One-shot methods (dynamic, fp16): no settings to fall back on, so the budget is checked once."""
    t = judge_once(path, Trial("initial", Settings(0, "-", False, variant)), ho.measure(_run(path, ho)), ho, budget,
                   what=f"onnx {variant}", fix="try --quantize int8 (with its fallbacks) or raise --max-accuracy-drop")
    info = {**info, "budget": asdict(budget)}
    a = finish(path, variant, ho, min_top1=budget.min_agreement, t0=t0,
               extra={"quantization": info})
    return Quantized(a, [t], info)


def quantize(model_or_artifact: Any, config: QuantConfig, *, splits: Splits, workdir: Path,
             teacher: Any = None, reference: np.ndarray | None = None, kind: str = "logits",
             log: Callable[[str], None] = lambda _m: None) -> Quantized:
    """Quantize a torch model, a LoadedModel, a float32 ONNX Artifact or an .onnx path with `config`.

    splits: train (calibration, QAT), val (sensitivity, QAT model selection), test (the held-out
    split every figure is measured on). reference: the float model's logits on splits.test.x
    (default: the float ONNX's). teacher: QAT's distillation teacher (default: the model itself).
    kind: the output's kind (compressor.core.parity.KINDS), which says what agreement with the float
    model means; accuracy is measured for classifiers ("logits") only.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(config, QAT) and kind != "logits":
        raise CompressError(f"--quantize qat fine-tunes with a classifier's distillation loss; this model's output "
                            f"is {kind}: use --quantize int8, fp16 or dynamic")
    if isinstance(config, QAT):
        from .qat import qat

        return qat(model_or_artifact, config, splits=splits, workdir=workdir, teacher=teacher,
                   reference=reference, log=log)
    if not isinstance(config, (StaticInt8, DynamicInt8, Fp16)):
        raise CompressError(f"unknown quantization config {type(config).__name__}; use StaticInt8, "
                            "DynamicInt8, Fp16 or QAT")
    src = float_onnx_of(model_or_artifact, workdir)
    ho = held_out(src, splits, reference, kind)
    t0 = time.perf_counter()
    if isinstance(config, StaticInt8):
        return static(src, config, splits, workdir, ho, log)
    if isinstance(config, DynamicInt8):
        rr = cpu.choose().reduce_range if config.reduce_range is None else config.reduce_range
        dst = q.dynamic_int8(src, workdir / "model.dynamic-int8.onnx", per_channel=config.per_channel,
                             reduce_range=rr, op_types=config.op_types)
        info = {"method": "dynamic", "reduce_range": rr, "op_types": list(config.op_types), "ops": q.op_types(dst)}
        return checked(dst, "dynamic-int8", AccuracyBudget(config.max_accuracy_drop, config.min_agreement), ho, t0,
                       info)
    dst = q.float16(src, workdir / "model.float16.onnx", keep_io_types=config.keep_io_types)
    return checked(dst, "float16", AccuracyBudget(config.max_accuracy_drop, config.min_agreement), ho, t0,
                   {"method": "float16", "keep_io_types": config.keep_io_types})
