"""A layer-dropped student of a BERT-style encoder (`--student layers:K`, as DistilBERT): size, CPU latency,
agreement with the teacher.

    .venv/bin/python -m studies.layer_students [--quick] [--layers 3] [--json out.json]

The teacher is `transformers.BertForSequenceClassification` built from a config (random initial weights,
nothing downloaded: hidden 256, 6 layers, 4 heads, MLP 1024, vocabulary 1000; --quick: a tiny one), wrapped to
take `input_ids` alone and return logits, and trained briefly on a synthetic token task whose class is the
bucket (token // 250) of the first token, so that its outputs depend on the input. It is then distilled through
`compressor.distill.engine.distill` with `--student layers:K` on the same sequences *without* labels (the
teacher's soft outputs are the only targets), once with kd alone and once with kd plus the encoder blocks'
hidden states (`--method kd,hidden`: student block j learns teacher block kept_layers[j]'s output). Latency:
median wall time of one forward pass of a batch, one thread, teacher and student alternating, after warm-up.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np

FULL = {"hidden": 256, "layers": 6, "heads": 4, "mlp": 1024, "vocab": 1000, "seq": 16, "samples": 1500,
        "teacher_epochs": 4, "epochs": 4, "batch": 32, "repeats": 30}
QUICK = {"hidden": 32, "layers": 4, "heads": 2, "mlp": 64, "vocab": 1000, "seq": 8, "samples": 400,
         "teacher_epochs": 4, "epochs": 2, "batch": 16, "repeats": 5}
CLASSES = 4


def make_teacher(cfg: dict[str, Any]):
    import torch
    import transformers
    from torch import nn

    class IdsOnly(nn.Module):
        """input_ids -> logits: the pipeline takes one input today."""

        input_dtype = torch.int64  # what compressor.loading reads for a module built in Python

        def __init__(self) -> None:
            super().__init__()
            conf = transformers.BertConfig(hidden_size=cfg["hidden"], num_hidden_layers=cfg["layers"],
                                           num_attention_heads=cfg["heads"], intermediate_size=cfg["mlp"],
                                           vocab_size=cfg["vocab"], num_labels=CLASSES,
                                           max_position_embeddings=max(64, cfg["seq"]))
            self.model = transformers.BertForSequenceClassification(conf)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids).logits

    return IdsOnly()


def token_data(cfg: dict[str, Any], seed: int = 0):
    """Random token sequences; the class is the first token's bucket of vocab/4 ids."""
    from compressor import data as datasets

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg["vocab"], size=(cfg["samples"], cfg["seq"]), dtype=np.int64)
    y = (ids[:, 0] * CLASSES // cfg["vocab"]).astype(np.int64)
    return datasets.split(datasets.Dataset(ids, y, tuple(f"bucket {i}" for i in range(CLASSES)), "tokens"), seed=0)


def latency(models: dict[str, Any], x, repeats: int) -> dict[str, float]:
    """Median seconds per forward pass of batch `x`, one thread, the models alternating (shared noise)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {k: [] for k in models}
    try:
        with torch.no_grad():
            for m in models.values():
                m.eval()
                for _ in range(3):
                    m(x)
            for _ in range(repeats):
                for k, m in models.items():
                    t0 = time.perf_counter()
                    m(x)
                    times[k].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return {k: statistics.median(v) for k, v in times.items()}


def agreement(student, teacher, x: np.ndarray) -> float:
    from compressor.evaluate import predict

    return float((predict(student, x).argmax(1) == predict(teacher, x).argmax(1)).mean())


def run(cfg: dict[str, Any], keep: int, work: str, lr: float = 1e-4) -> dict[str, Any]:
    import torch
    from rich.console import Console

    from compressor import data as datasets
    from compressor.distill import layers, students
    from compressor.distill.config import DistillConfig
    from compressor.distill.engine import distill
    from compressor.distill.hidden import hidden_gap
    from compressor.distill.trainer import fit
    from compressor.evaluate import accuracy
    from compressor.loading import from_module

    torch.manual_seed(0)
    sp = token_data(cfg)
    t0 = time.perf_counter()
    teacher = fit(make_teacher(cfg), sp.train, sp.val, epochs=cfg["teacher_epochs"], lr=5e-4, batch=32, seed=0)
    teacher_seconds = time.perf_counter() - t0
    unlabelled = datasets.Splits(*(datasets.Dataset(d.x, None, (), "tokens") for d in (sp.train, sp.val, sp.test)))
    dropped, _ = layers.drop_layers(teacher, keep)  # before training: what layer dropping alone keeps
    seconds, outs = {}, {}
    for methods in (("kd",), ("kd", "hidden")):  # the same teacher, data and schedule: only the loss differs
        t0 = time.perf_counter()
        outs[methods] = distill(from_module(teacher, input_shape=(1, cfg["seq"]), name="bert teacher"), unlabelled,
                                DistillConfig(student=f"layers:{keep}", methods=methods, epochs=cfg["epochs"], lr=lr,
                                              batch_size=32, cache_dir=f"{work}/cache",
                                              checkpoint_dir=f"{work}/runs-{'-'.join(methods)}"),
                                console=Console(stderr=True))
        seconds[methods] = time.perf_counter() - t0
    out, hid = outs[("kd",)], outs[("kd", "hidden")]
    distill_seconds = seconds[("kd",)]
    x = torch.from_numpy(sp.test.x[:cfg["batch"]])
    lat = latency({"teacher": teacher, "student": out.student}, x, cfg["repeats"])
    x_test = torch.from_numpy(sp.test.x)
    return {
        "config": cfg, "distill_lr": lr, "kept_layers": out.student_info["kept_layers"], "stack": out.student_info["stack"],
        "teacher_parameters": students.count_params(teacher), "student_parameters": students.count_params(out.student),
        "teacher_test_accuracy": accuracy(teacher, sp.test), "student_test_accuracy": accuracy(out.student, sp.test),
        "agreement_dropped_untrained": agreement(dropped, teacher, sp.test.x),
        "agreement_test": agreement(out.student, teacher, sp.test.x), "validation_check": out.check,
        "hidden_student_test_accuracy": accuracy(hid.student, sp.test),
        "hidden_agreement_test": agreement(hid.student, teacher, sp.test.x),
        "hidden_mse_dropped": hidden_gap(dropped, teacher, x_test),
        "hidden_mse_kd": hidden_gap(out.student, teacher, x_test),
        "hidden_mse_hidden": hidden_gap(hid.student, teacher, x_test),
        "hidden_pairs": hid.methods["hidden"]["pairs"], "hidden_distill_seconds": round(seconds[("kd", "hidden")], 1),
        "latency_teacher_s": lat["teacher"], "latency_student_s": lat["student"],
        "teacher_train_seconds": round(teacher_seconds, 1), "distill_seconds": round(distill_seconds, 1),
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def table(r: dict[str, Any]) -> str:
    c, pct = r["config"], lambda v: f"{100 * v:.1f}%"
    title = (f"BERT-style encoder (hidden {c['hidden']}, {c['layers']} layers, {c['heads']} heads, MLP {c['mlp']}, "
             f"vocab {c['vocab']}, sequences of {c['seq']} tokens); --student layers:{len(r['kept_layers'])} keeps "
             f"{r['stack']} {r['kept_layers']}")
    rows = [("teacher", r["teacher_parameters"], f"{1e3 * r['latency_teacher_s']:.2f} ms",
             pct(r["teacher_test_accuracy"]), "", ""),
            ("student (layers dropped, before distillation)", r["student_parameters"], "", "",
             pct(r["agreement_dropped_untrained"]), f"{r['hidden_mse_dropped']:.4f}"),
            ("student (distilled, no labels)", r["student_parameters"], f"{1e3 * r['latency_student_s']:.2f} ms",
             pct(r["student_test_accuracy"]), pct(r["agreement_test"]), f"{r['hidden_mse_kd']:.4f}"),
            (f"student layers:{len(r['kept_layers'])} distilled with hidden states (kd,hidden)",
             r["student_parameters"], "same", pct(r["hidden_student_test_accuracy"]), pct(r["hidden_agreement_test"]),
             f"{r['hidden_mse_hidden']:.4f}")]
    lines = [title, "", (f"| model | parameters | latency, batch {c['batch']}, 1 thread | test accuracy | "
             "agreement with teacher | hidden-state MSE to the teacher's blocks |"), "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {p:,} | {lat} | {acc} | {agr} | {mse} |" for n, p, lat, acc, agr, mse in rows]
    ratio_p = r["student_parameters"] / r["teacher_parameters"]
    ratio_t = r["latency_student_s"] / r["latency_teacher_s"]
    lines += ["", (f"parameters {ratio_p:.1%} of the teacher's, latency {ratio_t:.1%}; teacher trained in "
              f"{r['teacher_train_seconds']} s, student distilled (lr {r['distill_lr']:g}) in {r['distill_seconds']} s, "
              "with hidden states in "
              f"{r['hidden_distill_seconds']} s (pairs {r['hidden_pairs']}); "
              f"{r['versions']}")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny encoder: a smoke run of a few seconds")
    p.add_argument("--layers", type=int, default=3, help="encoder layers the student keeps (default 3)")
    p.add_argument("--lr", type=float, default=1e-4, help="the student's AdamW learning rate (default 1e-4: it "
                                                          "starts from trained layers)")
    p.add_argument("--json", help="write every figure to this file")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="layer-students") as work:
        r = run(QUICK if a.quick else FULL, a.layers, work, a.lr)
    print(table(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
