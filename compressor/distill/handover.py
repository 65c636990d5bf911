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
from ..pt2 import ExportedModule
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
    """student.pt (TorchScript with this tool's metadata, so that `compress student.pt` needs no --input); a
    student cut from a .pt2 teacher is saved as a program instead (`_save_program`)."""
    inner = model.module.inner if isinstance(model.module, Flat) else model.module
    if isinstance(inner, ExportedModule):
        _save_program(model, inner, path)
        return
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


def _save_program(model: LoadedModel, program: ExportedModule, path: Path) -> None:
    """A torch.export archive of a program's student (compressor/distill/layers_pt2.py), exported again from its
    graph. TorchScript tracing would turn the graph's symbolic sizes (the batch) into constants, and the file
    then failed at any other batch. The loader tells formats by content, so student.pt loads as a program."""
    gm = program.program
    xs = model.example(program.static_batch or 2)  # torch.export specialises a size-1 dimension
    xs = tuple(x.clone() for x in (xs if isinstance(xs, tuple) else (xs,)))  # distinct: export merges one object
    names = list(getattr(gm, "in_names", None) or [i.name for i in model.inputs])
    dims = [None if program.static_batch else {0: torch.export.Dim("batch")} for _ in xs]
    if getattr(gm, "keyword_only", False):
        args, kwargs, shapes = (), dict(zip(names, xs)), dict(zip(names, dims))
    else:
        args, kwargs, shapes = xs, None, tuple(dims)
    with torch.no_grad():
        ep = torch.export.export(gm, args, kwargs, dynamic_shapes=None if program.static_batch else shapes)
    meta = {"input_shape": list(model.input_shape), "input_dtype": model.inputs[0].dtype,
            "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in model.inputs],
            "task": ",".join(model.kinds)}
    with open(path, "wb") as f:
        torch.export.save(ep, f, extra_files={META_FILE: json.dumps(meta)})


def accuracy(module: nn.Module, data: Dataset, output: int = 0) -> float:
    """Test accuracy on the distilled output (a classifier's), NaN without labels."""
    if data.y is None or len(data) == 0:
        return math.nan
    return float((batches.pick_array(predict(module, data.x), output).argmax(1) == data.y).mean())
