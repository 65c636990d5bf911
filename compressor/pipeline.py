"""The main job as an ordered list of small steps: load, data, distill, export, quantize, bench, report.

Each step reads and extends one `State`. All files are built in a staged folder and
published atomically at the end (compressor.outputs.staged).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

import exporters
from exporters.base import Artifact, ExportJob, require_parity

from . import data as datasets
from . import manifest, summary
from .config import RunConfig
from .errors import CompressError
from .loading import LoadedModel, load_model
from .outputs import staged


@dataclass
class State:
    cfg: RunConfig
    console: Console
    workdir: Path = Path(".")
    teacher: LoadedModel | None = None
    model: LoadedModel | None = None  # what is exported: the student, or the teacher itself
    splits: datasets.Splits | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)  # extra manifest sections
    seconds: dict[str, float] = field(default_factory=dict)


def step_load(s: State) -> None:
    if s.cfg.model == "demo":
        from . import demo

        s.teacher = demo.teacher()
    else:
        s.teacher = load_model(s.cfg.model, arch=s.cfg.arch, trust_model=s.cfg.trust_model,
                               input_shape=s.cfg.input_shape)
    s.model = s.teacher


def step_data(s: State) -> None:
    t = s.teacher
    d = datasets.load(s.cfg.data, channels=t.input_shape[1] if len(t.input_shape) == 4 else None)
    datasets.check_fits(d, t.input_shape, t.num_outputs)
    s.splits = datasets.split(d, seed=s.cfg.seed)
    s.sections["data"] = {"source": d.source, "classes": len(d.classes), "labelled": d.y is not None,
                          "train": len(s.splits.train), "val": len(s.splits.val), "test": len(s.splits.test)}
    s.sections["teacher"] = describe(t, s.splits.test)


def step_distill(s: State) -> None:
    """Teacher(s) -> student when cfg.distill is set (compressor.distill); the student is then exported."""
    from .distill.step import run as distill_step

    distill_step(s)


def describe(m: LoadedModel, test: datasets.Dataset) -> dict[str, Any]:
    from .train import accuracy

    return {"source": m.source, "format": m.kind, "sha256": m.sha256, "input_shape": list(m.input_shape),
            "input_dtype": str(m.input_dtype).removeprefix("torch."), "outputs": m.num_outputs,
            "parameters": sum(p.numel() for p in m.module.parameters()),
            "test_accuracy": accuracy(m.module, test)}


def export_job(s: State) -> ExportJob:
    from .train import predict

    test, train = s.splits.test, s.splits.train
    n = s.cfg.parity_count(len(test))
    inputs = test.x[:n]
    reference = predict(s.model.module, inputs)
    if not np.isfinite(reference).all():
        raise CompressError(f"{s.model.source} outputs NaN or Inf on the held-out data; fix the model or the data")
    return ExportJob(model=s.model.module, example=s.model.example(1), inputs=inputs,
                     reference=reference, calib=train.x[:s.cfg.export.calib_samples], calib_pool=train.x,
                     workdir=s.workdir, labels=None if test.y is None else test.y[:n], options=s.cfg.export)


def step_export(s: State) -> None:
    job = export_job(s)
    for target in exporters.expand(",".join(s.cfg.targets)):
        exporter = exporters.get(target)
        with s.console.status(f"exporting {target} ..."):
            made = exporter.export(job)
        for a in made:
            with s.console.status(f"checking parity of {a.name} ..."):
                a.parity = exporter.validate(a, job)
            require_parity(a)
            job.artifacts[a.name] = a
            s.artifacts.append(a)
            s.console.print(f"[green]✓[/] {a.name}: parity max|Δ| {a.parity.max_abs_diff:.2e}, "
                            f"top-1 agreement {a.parity.top1_agreement:.4f}")


def step_quantize(s: State) -> None:
    """--quantize: quantized ONNX artifacts from the float one, within the accuracy budget (compressor.quantize)."""
    if s.cfg.quantize is None:
        return
    from .quantize.step import run as quantize_step

    quantize_step(s)


def step_bench(s: State) -> None:
    """Time every artifact on the --bench targets; writes bench.json and report.html/.md (benchmarks/)."""
    if not s.cfg.bench:
        return
    from benchmarks.step import bench_step
    from benchmarks.step import summary as bench_summary

    s.sections["bench"] = bench_summary(bench_step(s, s.cfg.bench_bounds))


def step_report(s: State) -> None:
    m = manifest.build(s.artifacts, s.workdir, **s.sections, step_seconds=s.seconds)
    manifest.write(m, s.workdir / "manifest.json")
    s.sections["manifest"] = m


Step = Callable[[State], None]
STEPS: list[tuple[str, Step]] = [
    ("load", step_load),
    ("data", step_data),
    ("distill", step_distill),
    ("export", step_export),
    ("quantize", step_quantize),
    ("bench", step_bench),
    ("report", step_report),
]


def run(cfg: RunConfig, console: Console | None = None) -> dict[str, Any]:
    """Run every step; returns the manifest. The output folder appears only when all steps pass."""
    from .distill import distributed

    if distributed.is_worker():  # a rank > 0 under torchrun: help train the student, write nothing
        return distributed.run_worker(cfg, STEPS)
    s = State(cfg, console or Console(stderr=True))
    with staged(Path(cfg.out), overwrite=cfg.overwrite) as tmp:
        s.workdir = tmp
        for name, step in STEPS:
            t0 = time.perf_counter()
            step(s)
            s.seconds[name] = round(time.perf_counter() - t0, 3)
    summary.print_run(s.sections["manifest"], Path(cfg.out), s.console)
    return s.sections["manifest"]
