"""The "load" and "data" steps: the teacher model, then the data split into train / validation / test."""
from __future__ import annotations

from typing import Any

from .. import data as datasets
from ..loading import LoadedModel, load_model
from .state import State


def load(s: State) -> None:
    if s.cfg.model == "demo":
        from .. import demo

        s.teacher = demo.teacher()
    else:
        s.teacher = load_model(s.cfg.model, arch=s.cfg.arch, trust_model=s.cfg.trust_model,
                               input_shape=s.cfg.input_shape)
    s.model = s.teacher


def data(s: State) -> None:
    t = s.teacher
    d = datasets.load(s.cfg.data, channels=t.input_shape[1] if len(t.input_shape) == 4 else None)
    datasets.check_fits(d, t.input_shape, t.num_outputs)
    s.splits = datasets.split(d, seed=s.cfg.seed)
    s.sections["data"] = {"source": d.source, "classes": len(d.classes), "labelled": d.y is not None,
                          "train": len(s.splits.train), "val": len(s.splits.val), "test": len(s.splits.test)}
    s.sections["teacher"] = describe(t, s.splits.test)


def describe(m: LoadedModel, test: datasets.Dataset) -> dict[str, Any]:
    from ..evaluate import accuracy

    return {"source": m.source, "format": m.kind, "sha256": m.sha256, "input_shape": list(m.input_shape),
            "input_dtype": str(m.input_dtype).removeprefix("torch."), "outputs": m.num_outputs,
            "parameters": sum(p.numel() for p in m.module.parameters()),
            "test_accuracy": accuracy(m.module, test)}
