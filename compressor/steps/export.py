"""The "export" step: every --target's artifacts, each validated in its own runtime before it is kept."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

import exporters
from exporters.base import ExportJob

from ..core.artifact import Artifact, require_parity
from ..core.errors import CompressError
from ..core.parity import Parity
from ..evaluate import predict
from .state import State

UNCALIBRATED = ("float32", "float16", "dynamic-int8")  # TFLite variants without activation calibration


def export_job(s: State) -> ExportJob:
    """What the exporters need: the model, real held-out inputs and PyTorch's outputs on them, calibration data."""
    test, train = s.splits.test, s.splits.train
    n = s.cfg.parity_count(len(test))
    inputs = test.x[:n]
    reference = predict(s.model.module, inputs)
    if not np.isfinite(reference).all():
        raise CompressError(f"{s.model.source} outputs NaN or Inf on the held-out data; fix the model or the data")
    options = s.cfg.export
    if s.sections.get("data", {}).get("random") and not options.variants:
        # random inputs cannot calibrate full-integer variants: only those that need no calibration
        options = dataclasses.replace(options, variants=UNCALIBRATED)
        s.sections["data"]["skipped"] = "TFLite int8/int16x8: random inputs cannot calibrate them"
    return ExportJob(model=s.model.module, example=s.model.example(1), inputs=inputs,
                     reference=reference, calib=train.x[:options.calib_samples], calib_pool=train.x,
                     workdir=s.workdir, labels=None if test.y is None else test.y[:n], options=options,
                     kind=s.model.task, class_names=s.class_names)


def check_and_keep(s: State, made: list[Artifact], validate: Callable[[Artifact], Parity],
                   kept: Callable[[Artifact], None], what: str = "parity of {}") -> None:
    """Validate each artifact (in order: a bundle's model before its page), refuse a failed one (nothing is
    published), keep the rest in s.artifacts and report each through `kept`."""
    for a in made:
        with s.console.status(f"checking {what.format(a.name)} ..."):
            a.parity = validate(a)
        require_parity(a)
        s.artifacts.append(a)
        kept(a)


AGREEMENT = {"logits": "top-1 agreement", "dense": "pixel agreement", "embedding": "mean cosine"}


def _printed(s: State) -> Callable[[Artifact], None]:
    def show(a: Artifact) -> None:
        p = a.parity
        agree = f", {AGREEMENT[p.kind]} {p.top1_agreement:.4f}" if p.kind in AGREEMENT else ""
        s.console.print(f"[green]✓[/] {a.name}: parity max|Δ| {p.max_abs_diff:.2e}{agree}")
    return show


def export(s: State) -> None:
    job = export_job(s)
    for target in exporters.expand(",".join(s.cfg.targets)):
        exporter = exporters.get(target)
        with s.console.status(f"exporting {target} ..."):
            made = exporter.export(job)
        check_and_keep(s, made, lambda a, e=exporter: e.validate(a, job), _printed(s))
