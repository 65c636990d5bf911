"""Quantization-aware fine-tuning (PyTorch 2 export quantization, torchao's PT2E) with distillation.

Why PT2E: in torch 2.13 an FX-QAT model (`torch.ao.quantization.quantize_fx`) does not export
to ONNX (its reference model fails in both exporters: "qscheme has no attribute detach" and
"aten.dequantize.self has no fake impl"), while a PT2E model converted with `convert_pt2e`
exports with the dynamo exporter as QuantizeLinear/DequantizeLinear around float ops with
int8 weights - the same QDQ form as ONNX Runtime's static int8.

Recipe: export the float student in training mode, insert fake-quant with the
X86InductorQuantizer's QAT config (u8 activations, s8 per-channel symmetric weights), fine-tune
with the distillation loss against the teacher still on (compressor.distill.losses), freeze
BatchNorm statistics and then the observers after a few epochs, keep the epoch with the best
validation accuracy, convert, export.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.budget import AccuracyBudget, Settings, Trial
from ..core.errors import CompressError, ConverterError
from ..data import Splits
from .config import QAT


def _torchao():
    logging.getLogger("torchao").setLevel(logging.ERROR)  # it logs missing CUDA kernels on import
    try:
        from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )
    except ImportError as e:
        raise CompressError(f"--quantize qat needs torchao ({e}); run scripts/setup.sh "
                            "(it installs torchao==0.18.0)") from None
    quantizer = X86InductorQuantizer().set_global(_qat_config(get_default_x86_inductor_quantization_config(is_qat=True)))
    return quantizer, prepare_qat_pt2e, convert_pt2e, move_exported_model_to_train, move_exported_model_to_eval


def _qat_config(default: Any) -> Any:
    """X86's QAT config with the weights on the grid ONNX Runtime and TFLite use themselves.

    Symmetric per-channel int8 in [-127, 127] (both runtimes' symmetric range; X86's default is
    [-128, 127]) with a memoryless observer, so that each channel's scale is max|w| / 127 of the
    weights as they end: re-quantizing the converted weights (TFLite's converter does) then lands
    on the same integers instead of rounding twice.
    """
    from torchao.quantization.pt2e.fake_quantize import FusedMovingAvgObsFakeQuantize
    from torchao.quantization.pt2e.observer import MovingAveragePerChannelMinMaxObserver

    fq = FusedMovingAvgObsFakeQuantize.with_args(eps=2 ** -12, observer=MovingAveragePerChannelMinMaxObserver,
                                                  averaging_constant=1.0)
    weight = dataclasses.replace(default.weight, quant_min=-127, observer_or_fake_quant_ctr=fq)
    return dataclasses.replace(default, weight=weight)


def _freeze_activation_ranges(gm: torch.fx.GraphModule) -> None:
    """Stop the activation observers (standard QAT: ranges settle, then weights adapt to them); the
    per-channel weight observers keep following the weights (see _qat_config)."""
    for m in gm.modules():
        if hasattr(m, "disable_observer") and getattr(m, "qscheme", None) not in (torch.per_channel_symmetric,
                                                                                  torch.per_channel_affine):
            m.disable_observer()


def _freeze_batch_norm(gm: torch.fx.GraphModule) -> None:
    """Use the running statistics from now on: set the `training` argument of every batch-norm op False."""
    changed = False
    for n in gm.graph.nodes:
        if n.op == "call_function" and "batch_norm" in str(n.target) and len(n.args) > 5 \
                and isinstance(n.args[5], bool) and n.args[5]:
            n.args = (*n.args[:5], False, *n.args[6:])
            changed = True
    if changed:
        gm.recompile()


def _module_of(model: Any) -> nn.Module:
    from ..loading import LoadedModel

    if isinstance(model, LoadedModel):
        return model.module
    if isinstance(model, nn.Module):
        if isinstance(model, torch.jit.ScriptModule):
            raise CompressError("QAT needs a trainable nn.Module, not TorchScript; give a state_dict with --arch "
                                "or a .pt2 program")
        return model
    raise CompressError(f"QAT needs the torch model (got {type(model).__name__}); pass the student module")


@torch.no_grad()
def _logits(model: Callable, x: np.ndarray, batch: int = 512) -> np.ndarray:
    return torch.cat([model(torch.from_numpy(x[i:i + batch])) for i in range(0, len(x), batch)]).numpy()


@torch.no_grad()
def _score(model: Callable, teacher_logits: torch.Tensor, val: Any, temperature: float) -> tuple[float, float]:
    """(accuracy, -distillation loss) on the validation split: the loss breaks accuracy ties, which on a
    few hundred images are common. Without labels, agreement with the teacher stands in for accuracy."""
    from ..distill.losses import kd_loss, soft_targets

    out, t = torch.from_numpy(_logits(model, val.x)), teacher_logits
    truth = t.argmax(1) if val.y is None else torch.from_numpy(val.y)
    return float((out.argmax(1) == truth).float().mean()), -float(kd_loss(out, soft_targets([t], temperature),
                                                                          temperature))


def finetune(student: nn.Module, teacher: nn.Module, cfg: QAT, splits: Splits,
             log: Callable[[str], None] = lambda _m: None) -> torch.fx.GraphModule:
    """The fake-quantized student after QAT with distillation (best validation epoch), in eval mode."""
    from ..distill.losses import hard_loss, kd_loss, soft_targets
    from ..evaluate import seed_everything

    quantizer, prepare, _convert, to_train, to_eval = _torchao()
    gen = seed_everything(cfg.seed)
    x_train = torch.from_numpy(splits.train.x)
    y = splits.train.y
    y_train = torch.from_numpy(y) if y is not None else torch.full((len(x_train),), -1, dtype=torch.long)
    teacher = teacher.eval()
    model = copy.deepcopy(student).train()
    batch_dim = torch.export.Dim("batch", min=2, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = torch.export.export(model, (x_train[:cfg.batch],), dynamic_shapes=({0: batch_dim},)).module()
        gm = prepare(gm, quantizer)
    opt = torch.optim.AdamW(gm.parameters(), lr=cfg.lr, weight_decay=0.0)
    val = splits.val if len(splits.val) else splits.train
    what = "accuracy" if val.y is not None else "agreement with the teacher"
    # the start counts as a candidate: observers calibrated on the training data, no update yet (what
    # post-training quantization gives), so fine-tuning is kept only where validation says it helped
    to_eval(gm)
    with torch.no_grad():
        for i in range(0, len(x_train), cfg.batch):
            gm(x_train[i:i + cfg.batch])
    teacher_val = torch.from_numpy(_logits(teacher, val.x))  # the same every epoch
    best = _score(gm, teacher_val, val, cfg.temperature)
    best_state = copy.deepcopy(gm.state_dict())
    log(f"QAT start (calibrated, not trained): validation {what} {100 * best[0]:.2f}%")
    for epoch in range(1, cfg.epochs + 1):
        to_train(gm)  # before freezing: torchao's to_train rewrites every batch norm to training mode
        if epoch > cfg.freeze_bn_epoch:
            _freeze_batch_norm(gm)
        if epoch > cfg.freeze_observer_epoch:
            _freeze_activation_ranges(gm)
        for idx in torch.randperm(len(x_train), generator=gen).split(cfg.batch):
            if len(idx) < 2:  # batch norm in training mode needs two samples
                continue
            xb = x_train[idx]
            with torch.no_grad():
                target = soft_targets([teacher(xb)], cfg.temperature)
            out = gm(xb)
            loss = (1 - cfg.alpha) * kd_loss(out, target, cfg.temperature) + cfg.alpha * hard_loss(out, y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        to_eval(gm)
        score = _score(gm, teacher_val, val, cfg.temperature)
        log(f"QAT epoch {epoch}/{cfg.epochs}: validation {what} {100 * score[0]:.2f}%")
        if score > best:
            best, best_state = score, copy.deepcopy(gm.state_dict())
    gm.load_state_dict(best_state)
    to_eval(gm)
    return gm


def to_int8_onnx(gm: torch.fx.GraphModule, example: torch.Tensor, path: Path) -> dict[str, Any]:
    """convert_pt2e, then the dynamo exporter: a QDQ ONNX with int8 weights."""
    from exporters.onnx import opset_of, optimize

    _quantizer, _prepare, convert, _to_train, to_eval = _torchao()
    cm = convert(gm)
    to_eval(cm)
    x = example.expand(2, *example.shape[1:]).contiguous()
    raw = path.with_suffix(".raw.onnx")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            ep = torch.export.export(cm, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
            torch.onnx.export(ep, (x,), str(raw), dynamo=True, input_names=["input"], output_names=["output"],
                              external_data=False, verbose=False)
    except Exception as e:
        raise ConverterError(f"exporting the QAT model to ONNX failed ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); use --quantize int8 instead") from e
    optimize(raw, path)
    raw.unlink()
    return {"exporter": "dynamo (torchao convert_pt2e)", "opset": opset_of(path)}


def qat(model: Any, cfg: QAT, *, splits: Splits, workdir: Path, teacher: Any = None,
        reference: np.ndarray | None = None, log: Callable[[str], None] = lambda _m: None):
    """QAT with distillation, exported to a QDQ int8 ONNX; returns a core.Quantized."""
    from exporters.onnx import run
    from exporters.onnx.int8 import op_types

    from .core import HeldOut, Quantized, finish, judge_once

    t0 = time.perf_counter()
    student = _module_of(model).eval()
    teacher_module = _module_of(teacher) if teacher is not None else copy.deepcopy(student)
    gm = finetune(student, teacher_module, cfg, splits, log)
    example = torch.from_numpy(splits.train.x[:1])
    dst = Path(workdir) / "model.qat-int8.onnx"
    how = to_int8_onnx(gm, example, dst)
    ref = reference if reference is not None else _logits(student, splits.test.x)
    ho = HeldOut(splits.test.x, ref, splits.test.y)

    unlabelled_floor = 0.95 if splits.test.y is None else 0.0  # no labels: agreement is all we can judge
    budget = AccuracyBudget(cfg.max_accuracy_drop, max(cfg.min_agreement, unlabelled_floor))
    trial = judge_once(dst, Trial("qat", Settings(len(splits.train), "qat", True, "u8s8")),
                       ho.measure(run(dst, ho.inputs)), ho, budget, what="QAT int8",
                       fix="train longer (QAT epochs), raise --max-accuracy-drop, or use --quantize int8")
    info = {"method": "qat", "format": "QDQ", "quantizer": "torchao X86InductorQuantizer (is_qat=True)",
            "int8_scheme": {"scheme": "u8s8", "activations": "uint8", "weights": "int8 per-channel symmetric"},
            "distillation": {"loss": "compressor.distill.losses.kd_loss + hard_loss", "alpha": cfg.alpha,
                             "temperature": cfg.temperature, "teacher": "given" if teacher is not None
                             else "the float model itself"},
            "epochs": cfg.epochs, "lr": cfg.lr, "budget": dataclasses.asdict(budget),
            **how, "ops": op_types(dst)}
    a = finish(dst, "qat-int8", ho, min_top1=budget.min_agreement, t0=t0,
               extra={"quantization": info})
    a.opset = how["opset"]
    return Quantized(a, [trial], info)
