"""The trained student handed to the exporters: as a LoadedModel with the teacher's inputs and outputs (names,
shapes, dtypes, kinds), saved as student.pt, and scored on the test split."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from ..core.signature import Flat
from ..data import Dataset
from ..evaluate import predict
from ..loading import META_FILE, LoadedModel, finish, from_module, module_hash, save_torchscript
from . import batches


def as_loaded(student: nn.Module, teacher: LoadedModel, name: str, kind: str) -> LoadedModel:
    """The student as the pipeline's model. One input and one output: as before (`from_module`); several: the
    user's model inside the Flat wrapper, called by the teacher's input names and with its outputs' kinds."""
    if not teacher.multi:
        return from_module(student, input_shape=teacher.input_shape, task=kind, name=name)
    inner = student.inner if isinstance(student, Flat) else student
    given = [(i.name, i.shape, i.dtype) for i in teacher.inputs]
    return finish(inner, kind="python", source=name, sha=module_hash(inner), meta={}, input_shape=teacher.input_shape,
                  input_dtype=teacher.inputs[0].dtype, task=",".join(teacher.kinds), inputs=given)


def save(model: LoadedModel, path: Path) -> None:
    """student.pt (TorchScript with this tool's metadata, so that `compress student.pt` needs no --input)."""
    if not model.multi:
        save_torchscript(model.module, path, model.input_shape, str(model.input_dtype).removeprefix("torch."))
        return
    module = model.module.eval()
    # traced, not scripted: Hugging Face models do not compile; every input and output keeps its order
    with torch.no_grad():
        traced = torch.jit.trace(module, model.example(2), strict=False, check_trace=False)
    meta = {"input_shape": list(model.input_shape), "input_dtype": model.inputs[0].dtype,
            "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in model.inputs],
            "task": ",".join(model.kinds)}
    with open(path, "wb") as f:
        torch.jit.save(traced, f, _extra_files={META_FILE: json.dumps(meta)})


def accuracy(module: nn.Module, data: Dataset, output: int = 0) -> float:
    """Test accuracy on the distilled output (a classifier's), NaN without labels."""
    if data.y is None or len(data) == 0:
        return math.nan
    return float((batches.pick_array(predict(module, data.x), output).argmax(1) == data.y).mean())
