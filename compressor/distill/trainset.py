"""What a distillation trains on: the teachers, the training inputs (plain or packed: a field per model input),
labels where they mean something, and the validation split with the (ensemble) teacher's answers on it."""
from __future__ import annotations

import numpy as np
from torch import nn

from .. import data as datasets
from ..core.errors import CompressError
from ..evaluate import predict
from ..loading import LoadedModel, load_model
from . import batches, quality
from .config import DistillConfig
from .methods import check_kind
from .trainer import TrainData


def load_teachers(main: LoadedModel, cfg: DistillConfig, arch: str | None, trust: bool) -> list[LoadedModel]:
    out = [main]
    several = len(main.inputs) > 1
    for path in cfg.teachers:
        t = load_model(path, arch=arch, trust_model=trust, input_shape=None if several else main.input_shape,
                       inputs=[(i.name, i.shape, i.dtype) for i in main.inputs] if several else None)
        if t.num_outputs != main.num_outputs or len(t.outputs) != len(main.outputs):
            raise CompressError(f"teacher {path} has {t.num_outputs} outputs but {main.source} has "
                                f"{main.num_outputs}; ensemble members must predict the same classes")
        out.append(t)
    return out


def distilled_output(teacher: LoadedModel, cfg: DistillConfig) -> tuple[int, str, str]:
    """(index, name, kind) of the output distilled; its kind picks the losses and the validation metric."""
    i, name, kind = batches.choose_output(teacher, cfg.distill_output)
    if kind not in quality.METRIC:
        raise CompressError(f"--student cannot distil {teacher.source}'s output {name!r} of kind {kind}; choose "
                            f"another with --distill-output, or set its kind with --task")
    return i, name, kind


def _unlabelled(cfg: DistillConfig, teacher: LoadedModel) -> datasets.Dataset:
    if len(teacher.inputs) > 1:  # one packed array, a field per input, like the training data
        from .. import data_inputs

        return data_inputs.load(cfg.unlabeled, teacher.inputs)
    extra = datasets.load(cfg.unlabeled, channels=teacher.input_shape[1] if len(teacher.input_shape) == 4 else None,
                          input_dtype=str(teacher.input_dtype).removeprefix("torch."))
    datasets.check_fits(extra, teacher.input_shape, None)
    return extra


def training_data(splits: datasets.Splits, cfg: DistillConfig, teacher: LoadedModel,
                  ensemble: list[nn.Module]) -> TrainData:
    index, _, kind = distilled_output(teacher, cfg)
    check_kind(cfg.methods, kind)  # before any work: a method that cannot distil this kind of output
    tr = splits.train
    # labels are class indices: they mean something to a classifier only (a digit label is no embedding)
    has_y = tr.y is not None and kind == "logits"
    x, y = tr.x, tr.y if has_y else np.full(len(tr), -1, np.int64)
    if cfg.unlabeled:
        extra = _unlabelled(cfg, teacher)
        x = np.concatenate([x, extra.x.astype(x.dtype)])
        y = np.concatenate([y, np.full(len(extra), -1, np.int64)])  # their labels, if any, are not used
    if (y < 0).all() and "labels" in cfg.methods:
        raise CompressError("method 'labels' needs labelled data, but the training data has no labels; "
                            "use kd (the teacher's predictions are then the only targets)")
    val = splits.val
    outs = [batches.pick_array(predict(t, val.x), index) for t in ensemble] if len(val) else []
    ref = quality.reference(outs, kind) if outs else None
    if kind != "logits":  # validated against the teacher's outputs (quality.score)
        val_y = np.full(len(val), -1, np.int64)
    elif val.y is not None:
        val_y = val.y
    elif ref is not None:  # no labels anywhere: validate on agreement with the (ensemble) teacher
        val_y = ref.argmax(1)
    else:
        val_y = np.zeros(0, np.int64)
    return TrainData(x, y, val.x, val_y, kind, ref, output=index)
