"""The "bench" step: time what was just exported (benchmarks/), with PyTorch rows for teacher and student.

Unlike `compress bench OUT_DIR`, the pipeline still holds the held-out data and the PyTorch models,
so parity here is against PyTorch on real inputs, and the trade-off plot gets the teacher and
student beside every artifact. Writes bench.json, report.html, report.md and the plot PNGs into
the (staged) output folder; a short summary goes into the manifest's "bench" section.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import report
from benchmarks.bench import BenchOptions, run
from benchmarks.discover import BENCHED_FORMATS, Item, item
from benchmarks.harness import PRESETS
from benchmarks.platforms import PlatformOptions

from ..core.artifact import Artifact
from ..evaluate import predict
from .state import State

PARITY_SAMPLES = 32


def _items(artifacts: list[Artifact]) -> list[Item]:
    return [item(a.name, a.path, a.format, a.variant, a.inputs, a.parity.to_dict() if a.parity else None)
            for a in artifacts if a.format in BENCHED_FORMATS]


def _torch_item(name: str, module: Any, example: Any, folder: Path, accuracy: float | None) -> Item | None:
    import torch

    path = folder / f"{name}.pt"
    try:
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(module.eval(), example), str(path))
    except Exception:  # noqa: BLE001 - an untraceable model just has no PyTorch row
        return None
    return Item(f"torch:{name}", path, "torchscript", "float32", tuple(example.shape), "float32",
                {"accuracy": accuracy})


def _accuracy(module: Any, x: np.ndarray, y: np.ndarray | None) -> float | None:
    if y is None:
        return None
    return float((predict(module, x).argmax(1) == y).mean())


def torch_counts(module: Any, example: Any) -> dict[str, int]:
    """Parameters and MACs of the exported PyTorch model (FlopCounterMode counts 2 FLOPs per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module.eval()(example)
    return {"parameters": sum(p.numel() for p in module.parameters()), "macs": int(fc.get_total_flops() // 2)}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The manifest's bench section: medians per row (samples stay in bench.json)."""
    return {"targets": result["targets"], "report": "report.html", "results": "bench.json",
            "matmul_gflops": result["machine"].get("matmul_gflops"),
            "recommended": result.get("recommended", {}),  # per target: the fastest within budget, ties by size
            "rows": [{"artifact": r["artifact"], "setting": r["setting"], "counted": r["counted"],
                      "median_ms": r.get("summary_ms", {}).get("median"), "error": r.get("error")}
                     for r in result["rows"]]}


def bench(s: State) -> None:
    """--bench: time every artifact on the --bench platforms; writes bench.json and report.html/.md."""
    if not s.cfg.bench:
        return
    s.sections["bench"] = summary(measure(s, s.cfg.bench_bounds))


def measure(s: State, bounds: str = "demo") -> dict[str, Any]:
    """Run the benchmark for the run's artifacts and PyTorch models; returns the result document."""
    cfg = s.cfg
    test = s.splits.test
    n = min(PARITY_SAMPLES, len(test))
    xs = test.x[:n].astype(np.float32)
    items = _items(s.artifacts)
    module = s.model.module

    def reference(x: np.ndarray) -> np.ndarray:
        return predict(module, x)

    opts = BenchOptions(targets=tuple(cfg.bench), bounds=PRESETS[bounds],
                        platform_options=PlatformOptions(device=cfg.bench_device),
                        seed=cfg.seed)
    with tempfile.TemporaryDirectory(prefix="compress-bench-torch-") as tmp:
        example = s.model.example(1)
        roles = [("teacher", s.teacher)] + ([("student", s.model)] if s.model is not s.teacher else [])
        # accuracy on the same held-out inputs the exporters' parity accuracy used
        k = cfg.parity_count(len(test))
        for role, m in roles:
            acc = _accuracy(m.module, test.x[:k], None if test.y is None else test.y[:k])
            it = _torch_item(role, m.module, example, Path(tmp), acc)
            if it:
                with contextlib.suppress(Exception):  # its own parameters and MACs (teacher != student)
                    it.info.update(torch_counts(m.module, example))
                items.append(it)
        extra = {k: s.sections[k] for k in ("teacher", "student", "data", "distillation") if k in s.sections}
        try:
            counts = torch_counts(module, example)
        except Exception:  # noqa: BLE001 - best effort: bench.run falls back to counting the ONNX graph
            counts = None
        teacher = s.teacher.module
        result = run(items, opts, reference=reference, parity_inputs=xs, console=s.console, extra=extra,
                     model_counts=counts, references={"torch:teacher": lambda x: predict(teacher, x)})
    for a in result["artifacts"]:  # the temp .pt files are gone; say what they were
        if a["format"] == "torchscript":
            a["path"] = f"(traced {a['name'].split(':')[1]}, not written)"
    (s.workdir / "bench.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    report.write(result, s.workdir)
    return result
