"""Why `--student auto --ratio 0.25 --epochs 2` students of MobileNetV2 / ResNet-18 agreed 0% with their teacher
(issue 15), on a small version: 64-pixel inputs, unlabelled data, the architectures of compressor/architectures.py.

    .venv/bin/python -m studies.student_collapse [--quick] [--models resnet18,mobilenet_v2] [--json out.json]

Two teachers per architecture (1000 classes as in the issue, width 1.0; --quick: tiny widths):
- "untrained": random weights, BatchNorm recalibrated and head centred on smooth images (what the issue ran:
  `compressor.architectures.recalibrate_bn`), distilled on smooth images;
- "trained": trained for a few epochs on scikit-learn digits upsampled to 64 px (10 classes), distilled on
  the same images without their labels.
Each is distilled twice through `compressor.distill.engine.distill`: with the trainer's batch-norm
re-estimation after every epoch (the fix) and without it (as before: running averages only). Per run: the
student's top-1 agreement with the teacher on validation, its largest |logit| in eval mode and in train
mode (batch statistics), the teacher's, its mean top-1 probability, and whether the chance check fired.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import Any

import numpy as np

FULL = {"width": 1.0, "size": 64, "smooth": 400, "teacher_epochs": 3, "epochs": 2}
QUICK = {"width": 0.125, "size": 32, "smooth": 200, "teacher_epochs": 1, "epochs": 1}


def digits64(size: int):
    """scikit-learn digits, bilinearly upsampled to size x size, three channels, standardised."""
    import torch
    from sklearn.datasets import load_digits

    from compressor import data as datasets

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    x = ((x - x.mean()) / x.std()).numpy()
    return datasets.split(datasets.Dataset(x, d.target.astype(np.int64), tuple(map(str, range(10))), "digits"),
                          seed=0)


def unlabelled(sp):
    from compressor import data as datasets

    return datasets.Splits(*(datasets.Dataset(d.x, None, (), d.source) for d in (sp.train, sp.val, sp.test)))


def teachers(name: str, cfg: dict[str, Any]):
    """(label, teacher module, splits) for the untrained and the trained teacher."""
    import torch

    from compressor import data as datasets
    from compressor.architectures import build, recalibrate_bn, smooth_images
    from compressor.distill.trainer import fit

    torch.manual_seed(0)
    untrained = recalibrate_bn(build(name, 1000, cfg["width"]), smooth_images(64, cfg["size"], seed=1))
    x = smooth_images(cfg["smooth"], cfg["size"], seed=2).numpy().astype(np.float32)
    smooth = datasets.split(datasets.Dataset(x, None, (), "smooth"), seed=0)
    sp = digits64(cfg["size"])
    torch.manual_seed(0)
    trained = fit(build(name, 10, cfg["width"]).train(), sp.train, sp.val, epochs=cfg["teacher_epochs"], seed=0)
    return [("untrained, 1000 classes", untrained, smooth), ("trained on digits", trained, unlabelled(sp))]


def one_run(teacher, splits, cfg: dict[str, Any], recalibrate: bool, work: str) -> dict[str, Any]:
    import torch
    from rich.console import Console

    from compressor.distill import trainer
    from compressor.distill.config import DistillConfig
    from compressor.distill.engine import distill
    from compressor.loading import from_module

    real = trainer.recalibrate_bn
    if not recalibrate:
        trainer.recalibrate_bn = lambda *a, **k: False  # the trainer as it was before the fix
    try:
        t0 = time.perf_counter()
        out = distill(from_module(teacher, input_shape=(1, 3, cfg["size"], cfg["size"])), splits,
                      DistillConfig(student="auto", ratio=0.25, epochs=cfg["epochs"], cache=False,
                                    checkpoint_dir=f"{work}/{time.time_ns()}"),
                      console=Console(stderr=True, quiet=True))
        seconds = time.perf_counter() - t0
    finally:
        trainer.recalibrate_bn = real
    st = out.student
    with torch.no_grad():
        st.train()
        train_mode = float(st(torch.from_numpy(splits.val.x[:32])).abs().max())
        st.eval()
    c = out.check
    return {"agreement": c["value"], "student_max_abs_eval": c["student_max_abs"], "student_max_abs_train_mode":
            round(train_mode, 4), "teacher_max_abs": c["teacher_max_abs"], "teacher_top1_probability":
            c["teacher_top1_probability"], "collapsed": c["collapsed"], "seconds": round(seconds, 1)}


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | teacher | BN re-estimated | agreement | student max abs logit, eval | same, train mode | "
            "teacher max abs logit | teacher mean top-1 p | warned |")
    out = [head, "|" + "---|" * 9]
    for r in rows:
        out.append(f"| {r['model']} | {r['teacher']} | {'yes' if r['recalibrate'] else 'no (before)'} | "
                   f"{100 * r['agreement']:.1f}% | {r['student_max_abs_eval']:.3g} | {r['student_max_abs_train_mode']:.3g} "
                   f"| {r['teacher_max_abs']:.3g} | {r['teacher_top1_probability']:.4f} | "
                   f"{'yes' if r['collapsed'] else 'no'} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny widths at 32 px: a smoke run")
    p.add_argument("--models", default="resnet18,mobilenet_v2")
    p.add_argument("--json", help="write every figure to this file")
    a = p.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="collapse") as work:
        for name in a.models.split(","):
            for label, teacher, splits in teachers(name, cfg):
                for recal in (False, True):
                    rows.append({"model": name, "teacher": label, "recalibrate": recal,
                                 **one_run(teacher, splits, cfg, recal, work)})
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(f"\n{cfg}, torch {torch.__version__}\n" + table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"config": cfg, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
