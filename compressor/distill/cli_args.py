"""Distillation flags of `compress`: added to the run parser, turned into a DistillConfig.

Flags default to None so that a recipe (--recipe, compressor/recipe.py) gives the base values and
only the flags actually typed override them (`apply`).
"""
from __future__ import annotations

import argparse
import dataclasses

from ..core.errors import CompressError
from .config import DistillConfig, parse_methods

# flag dest -> DistillConfig field, for the flags that copy straight across
_DIRECT = {"student": "student", "ratio": "ratio", "ratio_of": "ratio_of", "student_init": "student_init",
           "student_arch": "student_arch",
           "temperature": "temperature", "alpha": "alpha", "epochs": "epochs", "assistants": "assistants",
           "ensemble_mean": "ensemble_mean", "checkpoint_dir": "checkpoint_dir", "patience": "patience",
           "augment": "augment", "unlabeled": "unlabeled", "lr": "lr", "batch_size": "batch_size",
           "teacher_cache_dir": "cache_dir", "device": "device", "distill_output": "distill_output",
           "min_kept": "min_kept", "precision": "precision", "grad_accum": "grad_accum",
           "checkpoint_every": "checkpoint_every"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    # --recipe is the whole run's (compressor/recipe.py); added here, among the general options, so that
    # this parser alone (scripts, tests) also reads a distillation recipe through `from_args`
    p.add_argument("--recipe", help="YAML file of any option (the distillation keys below included; "
                                    "docs/api.md#recipes); flags typed here override it")
    g = p.add_argument_group("distillation (on when --student is given, or the --recipe has distillation keys)")
    g.add_argument("--student", help="'auto' (prune the teacher to --ratio, then distil), 'layers:K' (K of a "
                                     "transformer teacher's encoder layers, evenly spaced) or a student model file")
    g.add_argument("--ratio", type=float, help="--student auto: fraction of the teacher's parameters kept (0.25)")
    g.add_argument("--ratio-of", help="what --ratio counts: params (default) or macs")
    g.add_argument("--student-init", help="--student auto: start from the teacher's weights (teacher, default) "
                                          "or from random weights (random)")
    g.add_argument("--student-arch", help="package.module:Class when the student file is a state_dict")
    g.add_argument("--method", help="losses with optional weights, e.g. kd or kd:1,dkd:0.5; "
                                    "choose from labels, kd, dkd, hint, crd, cosine, mse, smooth_l1, hidden "
                                    "(default kd: the output kind's loss)")
    g.add_argument("--temperature", type=float, help="softmax temperature of the soft targets (default 4)")
    g.add_argument("--alpha", type=float, help="weight of the hard-label loss, 0..1 (default 0.5)")
    g.add_argument("--epochs", type=int, help="training epochs per stage (default 30)")
    g.add_argument("--lr", type=float, help="AdamW learning rate (default 3e-3)")
    g.add_argument("--batch-size", type=int, help="training batch size (default 64)")
    g.add_argument("--grad-accum", type=int, help="accumulate gradients over N batches per optimizer step: an "
                                                  "effective batch of batch-size x N (default 1)")
    g.add_argument("--precision", help="training arithmetic: fp32 (default), bf16 or fp16 (autocast; fp16 with "
                                       "gradient scaling); the teacher and validation stay fp32")
    g.add_argument("--patience", type=int, help="stop after this many epochs without a better validation score")
    g.add_argument("--hint", action="append", help="FitNets pair teacher_layer:student_layer (repeatable)")
    g.add_argument("--assistants", type=int, help="TAKD: teacher assistants between teacher and student")
    g.add_argument("--extra-teacher", action="append", help="another teacher file for an ensemble (repeatable)")
    g.add_argument("--ensemble-mean", help="how ensemble teachers' predictions combine: arithmetic or geometric")
    g.add_argument("--augment", help="input augmentation: none (default; teacher outputs cached) or shift")
    g.add_argument("--unlabeled", help="extra unlabelled data (folder or .npz) whose targets come from the teacher")
    g.add_argument("--no-teacher-cache", action="store_true", help="run the teacher online instead of caching")
    g.add_argument("--teacher-cache-dir", help="where teacher outputs are cached (default ~/.cache/edge-compress)")
    g.add_argument("--checkpoint-dir", help="where epoch checkpoints go (default .compress-runs/<run hash>)")
    g.add_argument("--checkpoint-every", type=int, help="also checkpoint every N optimizer steps, for --resume "
                                                        "mid-epoch (default 0: at the end of each epoch only)")
    g.add_argument("--device", help="where training runs: cpu (default), cuda, mps, or auto (cuda, else mps, "
                                    "else cpu); the teacher runs there too")
    g.add_argument("--distill-output", help="the output to distil, of a model with several (default: the first); "
                                            "its kind picks the loss")
    g.add_argument("--min-kept", type=float, help="the share of the teacher's validation accuracy (or, without labels, "
                                                  "agreement, mean IoU or cosine with it) the student must keep; "
                                                  "fallbacks are tried, then the run fails (default 0.97; 0: off)")
    g.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")


def from_args(a: argparse.Namespace, extra_teachers: list[str] | tuple[str, ...] = ()) -> DistillConfig | None:
    """The flags over a distillation-only recipe (a.recipe, if the parser has --recipe), or over the defaults."""
    from . import recipe

    path = getattr(a, "recipe", None)
    base = recipe.load(path) if path else (DistillConfig() if a.student is not None else None)
    return apply(a, base, extra_teachers)


def apply(a: argparse.Namespace, base: DistillConfig | None,
          extra_teachers: list[str] | tuple[str, ...] = ()) -> DistillConfig | None:
    """The typed distillation flags over `base` (a recipe's; None: no distillation unless --student is typed).

    Typed lists replace the recipe's: teachers (extra model files, --extra-teacher) and --hint.
    """
    teachers = tuple(extra_teachers) + tuple(a.extra_teacher or ())
    if base is None and a.student is None:
        typed = [f"--{k.replace('_', '-')}" for k in (*_DIRECT, "method", "hint")
                 if getattr(a, k, None) is not None] + (["--resume"] if a.resume else [])
        if teachers:
            typed.append("several teachers")
        if typed:
            raise CompressError(f"{', '.join(typed)} only apply to distillation; add --student auto (or a "
                                "student file), or --recipe FILE with distillation keys")
        return None
    if base is None:  # --student typed, no recipe's distillation: the defaults (a typed --seed applies below)
        base = DistillConfig()
    changes = {field: getattr(a, dest) for dest, field in _DIRECT.items() if getattr(a, dest, None) is not None}
    if a.method is not None:
        changes["methods"], changes["weights"] = parse_methods(a.method)
    if a.hint:
        changes["hints"] = tuple(a.hint)
        methods = changes.get("methods", base.methods)
        if a.method is None and "hint" not in methods:  # --hint alone means: add the hint loss
            changes["methods"] = (*methods, "hint")
            if base.weights:
                changes["weights"] = (*base.weights, 1.0)
    if teachers:  # typed on this command line: they replace a recipe's (a repeated run names them again)
        changes["teachers"] = teachers
    if a.no_teacher_cache:
        changes["cache"] = False
    if a.resume:
        changes["resume"] = True
    if getattr(a, "seed", None) is not None:  # --seed typed: it wins over the recipe's seed
        changes["seed"] = a.seed
    return dataclasses.replace(base, **changes)
