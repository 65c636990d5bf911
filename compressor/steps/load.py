"""The "load" and "data" steps: the teacher model, then the data split into train / validation / test."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .. import data as datasets
from ..core.errors import CompressError
from ..loading import LoadedModel, load_model, parse_input
from ..preprocess import parse as parse_preprocess
from .state import State


def _channels(shape: tuple[int, ...]) -> int | None:
    return shape[1] if len(shape) == 4 else None


def load(s: State) -> None:
    if s.cfg.model == "demo":
        from .. import demo

        s.teacher = demo.teacher()
    else:
        spec = s.cfg.data

        def data_fits(shape: tuple[int, ...]) -> None:  # before the model's first forward pass, which can be costly
            datasets.check_shape(datasets.sample_shape(spec, _channels(shape)), shape, spec)

        s.teacher = load_model(s.cfg.model, arch=s.cfg.arch, trust_model=s.cfg.trust_model,
                               input_shape=s.cfg.input_shape, check_shape=data_fits, task=s.cfg.task,
                               input_dtype=s.cfg.input_dtype,
                               inputs=[parse_input(t) for t in s.cfg.inputs] if len(s.cfg.inputs) > 1 else None,
                               from_data=datasets.input_guess(spec))
    t = s.teacher
    if t.multi and (s.cfg.quantize is not None or s.cfg.bench):  # distillation takes them (compressor/distill/batches.py)
        what = "--quantize" if s.cfg.quantize is not None else "--bench"
        raise CompressError(f"{t.source} has {len(t.inputs)} inputs and {len(t.outputs)} outputs; {what} takes models "
                            "with one input and one output today: export it without, (the TFLite float16, "
                            "dynamic-int8 and int8 variants quantize it), or wrap it to take and return one tensor")
    s.model = t


def data(s: State) -> None:
    t = s.teacher
    classify = t.task == "logits"
    if s.cfg.data == datasets.RANDOM and (s.cfg.distill is not None or s.cfg.quantize is not None):
        raise CompressError("--data random is for export-only runs (parity on random inputs); distillation and "
                            "quantization need real data: pass --data FOLDER or FILE.npz")
    if len(t.inputs) > 1:  # one packed array, a field per input (compressor/data_inputs.py)
        from .. import data_inputs

        d = data_inputs.load(s.cfg.data, t.inputs, num_classes=t.num_outputs if classify else None,
                             tokenizer=s.cfg.tokenizer)
    else:
        d = datasets.load(s.cfg.data, channels=_channels(t.input_shape),
                          num_classes=t.num_outputs if classify else None, classes=t.classes if classify else None,
                          input_dtype=str(t.input_dtype).removeprefix("torch."), input_shape=t.input_shape,
                          preprocess=parse_preprocess(s.cfg.preprocess), tokenizer=s.cfg.tokenizer)
    if not classify and d.y is not None:  # class labels say nothing about a dense map, an embedding or values
        s.console.print(f"[yellow]note[/]: the labels in {d.source} are not used: {t.source} outputs {t.task} "
                        "values, so agreement with the model stands in for accuracy", soft_wrap=True)
        d = dataclasses.replace(d, y=None)
    if len(t.inputs) <= 1:
        datasets.check_fits(d, t.input_shape, t.num_outputs if classify else None)
    warning = datasets.check_size(d)
    s.class_names = read_labels(s.cfg.labels, t) if s.cfg.labels else class_names(t, d)
    if s.class_names:
        s.sections["labels"] = list(s.class_names)
    s.splits = datasets.split(d, seed=s.cfg.seed)
    s.sections["data"] = {"source": d.source, "classes": len(d.classes), "labelled": d.y is not None,
                          "samples": len(d), "scale": d.scale, "train": len(s.splits.train),
                          "val": len(s.splits.val), "test": len(s.splits.test),
                          "min_samples": datasets.MIN_SAMPLES, "warn_below_samples": datasets.WARN_SAMPLES,
                          "random": d.source == datasets.RANDOM,
                          "preprocess": parse_preprocess(s.cfg.preprocess).to_dict()}
    if warning:
        s.sections["data"]["warning"] = warning
        s.console.print(f"[yellow]warning[/]: {warning}", soft_wrap=True)
    s.sections["teacher"] = describe(t, s.splits.test)


def read_labels(path: str, model: LoadedModel) -> tuple[str, ...]:
    """--labels FILE: one class name a line, as many as the classifier's outputs."""
    try:
        names = tuple(line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as e:
        raise CompressError(f"cannot read --labels {path} ({e}); give a text file with one class name a line") from None
    if model.task != "logits" or len(names) != model.num_outputs:
        raise CompressError(f"--labels {path} names {len(names)} classes but the model has "
                            f"{model.num_outputs if model.task == 'logits' else 'no class'} outputs; "
                            "give one name per output")
    return names


def class_names(model: LoadedModel, d: datasets.Dataset) -> tuple[str, ...] | None:
    """A classifier's labels: the ones the model records, else the data's classes (folder names) when they
    are as many as its outputs; written into every artifact and the manifest."""
    if model.task != "logits":
        return None
    if model.classes:
        return model.classes
    return d.classes if d.y is not None and len(d.classes) == model.num_outputs else None


def describe(m: LoadedModel, test: datasets.Dataset) -> dict[str, Any]:
    from ..evaluate import accuracy

    return {"source": m.source, "format": m.kind, "sha256": m.sha256, "input_shape": list(m.input_shape),
            "input_dtype": str(m.input_dtype).removeprefix("torch."), "outputs": m.num_outputs, "task": m.task,
            "output_shape": list(m.output_shape),
            "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in m.inputs],
            "output_tensors": [{"name": o.name, "shape": list(o.shape), "kind": k} for o, k in zip(m.outputs, m.kinds)],
            "parameters": sum(p.numel() for p in m.module.parameters()),
            "test_accuracy": accuracy(m.module, test)}
