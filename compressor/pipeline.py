"""The main job as an ordered list of small steps: load, data, distill, export, quantize, bench, report.

Each step (compressor/steps/) reads and extends one `State`. All files are built in a staged folder and
published atomically at the end (compressor.outputs.staged).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from . import runcache, summary
from .config import RunConfig
from .outputs import staged
from .runs import run_folder, stop_if_terminated
from .steps.bench import bench
from .steps.distill import distill
from .steps.export import export
from .steps.load import data, load
from .steps.quantize import quantize
from .steps.report import report
from .steps.state import State

Step = Callable[[State], None]
STEPS: list[tuple[str, Step]] = [
    ("load", load),
    ("data", data),
    ("distill", distill),
    ("export", export),
    ("quantize", quantize),
    ("bench", bench),
    ("report", report),
]


def inputs(cfg: RunConfig) -> list[str]:
    """The files and folders a run reads (built-in names aside): --out must not hold them."""
    d = cfg.distill
    named = [cfg.model if cfg.model != "demo" else None, cfg.data if cfg.data not in ("digits", "random") else None,
             cfg.labels, cfg.tokenizer]
    if d is not None:
        named += [d.student if d.student != "auto" else None, *d.teachers, d.unlabeled, d.checkpoint_dir]
    return [p for p in named if p]


def _steps(s: State) -> None:
    try:
        for name, step in STEPS:
            stop_if_terminated()  # a SIGTERM that the last step's libraries swallowed still stops the run
            t0 = time.perf_counter()
            step(s)
            s.seconds[name] = round(time.perf_counter() - t0, 3)
    except Exception:  # a failed run leaves no default checkpoints (an interrupted one keeps them: --resume)
        if s.distilled is not None:
            from .distill.engine import discard

            discard(s.distilled)
        raise


def run(cfg: RunConfig, console: Console | None = None) -> dict[str, Any]:
    """Run every step; returns the manifest. The output folder appears only when all steps pass."""
    with run_folder():  # every temporary file of the run, removed at the end (reused inside the CLI's)
        return _run(cfg, console)


def _run(cfg: RunConfig, console: Console | None) -> dict[str, Any]:
    from .distill import distributed

    console = console or Console(stderr=True)
    if distributed.is_worker():  # a rank > 0 under torchrun: help train the student, write nothing
        return distributed.run_worker(State(cfg, Console(stderr=True, quiet=True)), STEPS)
    s = State(cfg, console)
    run_key = runcache.key(cfg, inputs(cfg))
    with staged(Path(cfg.out), overwrite=cfg.overwrite, inputs=inputs(cfg)) as tmp:
        s.workdir = tmp
        restored = runcache.restore(run_key, tmp)
        if restored is not None:  # nothing changed since the run that made (and checked) this output
            s.sections["manifest"] = restored
            s.console.print("[green]unchanged[/]: the output of an earlier run with the same model, data, options "
                            "and tools, restored from the run cache (its parity checks are in the manifest)")
        else:
            _steps(s)
            note = runcache.save(run_key, tmp, sum(s.seconds.values()))
            if note:
                s.console.print(f"[yellow]note[/]: {note}")
    summary.print_run(s.sections["manifest"], Path(cfg.out), s.console)
    return s.sections["manifest"]
