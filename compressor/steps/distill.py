"""The "distill" step: train the student (compressor.distill), make it the model to export, report both."""
from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from ..distill import distributed as dd
from ..distill import handover, students
from ..distill.budget import distill as train_student
from .state import State


def distill(s: State) -> None:
    """Teacher(s) -> student when cfg.distill is set: reads s.cfg/teacher/splits, sets s.model to the student
    (what is exported) and writes the teacher, student and distillation sections of the manifest. A student that
    keeps less than --min-kept of the teacher, after the fallbacks, is a BudgetError (compressor/distill/budget.py)."""
    cfg = s.cfg.distill
    if cfg is None:
        return
    teacher = s.teacher
    out = train_student(teacher, s.splits, cfg, arch=s.cfg.arch, trust_model=s.cfg.trust_model, console=s.console)
    s.distilled = out
    used = out.config or cfg  # a fallback's options, when the first run missed --min-kept
    student = handover.as_loaded(out.student, teacher, "auto (pruned from the teacher)" if cfg.student == "auto"
                                 else cfg.student, out.kind)
    s.model = student
    if dd.is_worker():
        return
    example = teacher.example(1)
    test = s.splits.test
    t_fig = students.describe(teacher.module, example)
    index = [o.name for o in teacher.outputs].index(out.output) if teacher.outputs else 0
    # labels are class indices: they score a classifier's output only
    t_acc = handover.accuracy(teacher.module, test, index) if out.kind == "logits" else math.nan
    s.sections["teacher"] = {**s.sections.get("teacher", {}), **t_fig, "test_accuracy": t_acc}
    if len(out.teachers) > 1:
        s.sections["teacher"]["ensemble"] = [
            {"source": t.source, "sha256": t.sha256, **students.describe(t.module, example),
             "test_accuracy": handover.accuracy(t.module, test, index) if out.kind == "logits" else math.nan}
            for t in out.teachers]
    s_fig = students.describe(student.module, example)
    s_acc = handover.accuracy(student.module, test, index) if out.kind == "logits" else math.nan
    handover.save(student, s.workdir / "student.pt")
    s.sections["student"] = {
        "source": student.source, "file": "student.pt", "sha256": student.sha256, **s_fig, "test_accuracy": s_acc,
        "parameters_ratio": round(s_fig["parameters"] / t_fig["parameters"], 4),
        "macs_ratio": round(s_fig["macs"] / max(t_fig["macs"], 1), 4),
        "accuracy_kept": round(s_acc / t_acc, 4) if not math.isnan(t_acc) and t_acc > 0 else None,
        "made_by": out.student_info, "validation": out.check,
    }
    s.sections["distillation"] = {
        "methods": s.cfg.distill.method_weights(), "method_details": out.methods,  # hidden: the layer pairs
        "temperature": used.temperature, "alpha": cfg.alpha,
        "ensemble_mean": cfg.ensemble_mean if len(out.teachers) > 1 else None, "assistants": cfg.assistants,
        "epochs": used.epochs, "lr": used.lr, "augment": cfg.augment, "unlabeled": cfg.unlabeled, "seed": cfg.seed,
        "run_dir": out.run_dir, "teacher_cache": out.cache_keys, "stages": out.stages,
        "distributed_world_size": dd.world(), "device": out.device, "precision": used.precision,
        "batch_size": used.batch_size, "grad_accum": used.grad_accum,
        # --batch-size is global: under torchrun each rank takes its share of every batch
        "effective_batch_size": used.batch_size * used.grad_accum,
        "threads": out.threads, "checkpoint_every": used.checkpoint_every, "output_kind": out.kind,
        "collapsed": bool(out.check.get("collapsed", False)), "output": out.output, "budget": out.budget,
    }
    print_table(s.console, s.sections["teacher"], s.sections["student"])


def print_table(console: Any, t: dict[str, Any], st: dict[str, Any]) -> None:
    table = Table(title="teacher vs student")
    for col in ("model", "parameters", "MACs", "size", "test accuracy"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, d in (("teacher", t), ("student", st)):
        acc = d.get("test_accuracy")
        table.add_row(name, f"{d['parameters']:,}", f"{d['macs']:,}", f"{d['size_bytes'] / 1024:.1f} KB",
                      "-" if acc is None or math.isnan(acc) else f"{100 * acc:.2f}%")
    console.print(table)
