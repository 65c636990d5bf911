"""The "export" step: every --target's artifacts, each validated in its own runtime before it is kept."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

import exporters
from exporters.base import ExportJob

from ..core import chromium, feeds
from ..core.artifact import Artifact, require_parity
from ..core.errors import CompressError, ConverterError
from ..core.files import remove
from ..core.parity import Parity
from ..evaluate import predict
from .state import State

UNCALIBRATED = ("float32", "float16", "dynamic-int8")  # TFLite variants without activation calibration


def export_job(s: State) -> ExportJob:
    """What the exporters need: the model, real held-out inputs and PyTorch's outputs on them, calibration data."""
    test, train = s.splits.test, s.splits.train
    n = s.cfg.parity_count(len(test))
    inputs = test.x[:n]
    reference = predict(s.model.module, inputs)  # packed, a field per output, for several outputs
    if not all(np.isfinite(r).all() for r in feeds.fields(reference)):
        raise CompressError(f"{s.model.source} outputs NaN or Inf on the held-out data; fix the model or the data")
    options = s.cfg.export
    if s.sections.get("data", {}).get("random") and not options.variants:
        # random inputs cannot calibrate full-integer variants: only those that need no calibration
        options = dataclasses.replace(options, variants=UNCALIBRATED)
        s.sections["data"]["skipped"] = "TFLite int8/int16x8: random inputs cannot calibrate them"
    data = s.sections.get("data", {})  # only image folders were preprocessed: their scale says "pixels / 255"
    preprocess = data.get("preprocess") if str(data.get("scale", "")).startswith("pixels / 255") else None
    return ExportJob(model=s.model.module, example=s.model.example(1), inputs=inputs,
                     reference=reference, calib=train.x[:options.calib_samples], calib_pool=train.x,
                     workdir=s.workdir, labels=None if test.y is None else test.y[:n], options=options,
                     kind=s.model.task if len(s.model.outputs) <= 1 else
                     {o.name: k for o, k in zip(s.model.outputs, s.model.kinds)}, class_names=s.class_names,
                     preprocess=preprocess)


def check_and_keep(s: State, made: list[Artifact], validate: Callable[[Artifact], Parity],
                   kept: Callable[[Artifact], None], what: str = "parity of {}",
                   optional: Callable[[Artifact], bool] = lambda a: False,
                   skipped: dict[str, str] | None = None) -> None:
    """Validate each artifact (in order: a bundle's model before its page), refuse a failed one (nothing is
    published), keep the rest in s.artifacts and report each through `kept`. A failed `optional` one (a
    reduced-precision variant the user did not name) is left out instead, its reason put in `skipped`."""
    for a in made:
        try:
            with s.console.status(f"checking {what.format(a.name)} ..."):
                a.parity = validate(a)
        except ConverterError as e:  # the runtime cannot run it (named in one line by the validator)
            if not (optional(a) and skipped is not None):
                raise
            skipped[a.name] = f"{e}; not written"
            remove(a.path)
            continue
        if not a.parity.passed and optional(a) and skipped is not None:
            skipped[a.name] = f"parity check failed ({a.parity.failure()}); not written"
            remove(a.path)  # the staged output holds only what the manifest lists
            continue
        require_parity(a)
        s.artifacts.append(a)
        kept(a)


def optional_variant(job: ExportJob) -> Callable[[Artifact], bool]:
    """A default TFLite variant below float32 (float16, dynamic-int8, int8): one that fails its check is
    skipped with the reason and the others still ship; asked for by name (--variants), it fails the run."""
    return lambda a: a.format == "tflite" and a.variant != "float32" and not job.options.variants


AGREEMENT = {"logits": "top-1 agreement", "dense": "pixel agreement", "embedding": "mean cosine"}


def _printed(s: State) -> Callable[[Artifact], None]:
    def show(a: Artifact) -> None:
        p = a.parity
        for name, q in (p.outputs or {"": p.to_dict()}).items():
            agree = f", {AGREEMENT[q['kind']]} {q['top1_agreement']:.4f}" if q["kind"] in AGREEMENT else ""
            what = f" {name}" if name else ""
            s.console.print(f"[green]✓[/] {a.name}{what}: parity max|Δ| {q['max_abs_diff']:.2e}{agree}")
    return show


def export(s: State) -> None:
    job = export_job(s)
    targets = exporters.expand(",".join(s.cfg.targets))
    try:
        exporters.prepare(job, targets)  # converters a later target needs start now, on the other core
        with chromium.shared():  # the browser checks (TF.js, ORT-web, bundles) share one launched Chromium
            _export_targets(s, job, targets)
    finally:
        exporters.stop(job)  # a failed or interrupted run leaves no converter running
    for name, why in job.shared.skipped.items():  # a default variant that missed its check: said, not shipped
        s.console.print(f"[yellow]skipped[/] {name}: {why}", soft_wrap=True)
    if job.shared.skipped:
        s.sections["skipped"] = dict(job.shared.skipped)


def _export_targets(s: State, job: ExportJob, targets: list[str]) -> None:
    for target in targets:
        exporter = exporters.get(target)
        with s.console.status(f"exporting {target} ..."):
            made = exporter.export(job)
        check_and_keep(s, made, lambda a, e=exporter: e.validate(a, job), _printed(s),
                       optional=optional_variant(job), skipped=job.shared.skipped)
