"""Models whose output is not class logits: a dense map (segmentation) and an embedding, through
ONNX and TFLite, each judged by its kind's agreement (pixel arg-max agreement, cosine)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from compressor.core.artifact import require_parity
from compressor.loading import from_module
from exporters import onnx as onnx_exporter
from exporters import tflite
from exporters.base import ExportJob, ExportOptions

pytestmark = [pytest.mark.slow, pytest.mark.tflite]


class TinySegmenter(nn.Module):
    """Per-pixel class scores at the input's resolution, as a segmentation head gives them."""

    input_shape = (1, 3, 16, 16)

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class TinyEmbedder(nn.Module):
    """A unit-length embedding of the input."""

    input_shape = (1, 3, 16, 16)
    task = "embedding"

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.proj = nn.Linear(8 * 8 * 8, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(torch.relu(self.conv(x)).flatten(1)), dim=1)


def job_for(model: nn.Module, workdir) -> ExportJob:
    torch.manual_seed(0)
    lm = from_module(model.eval())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, *lm.input_shape[1:])).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x[:16])).numpy()
    return ExportJob(model=model, example=lm.example(1), inputs=x[:16], reference=ref, calib=x[16:],
                     workdir=workdir, options=ExportOptions(variants=("float32", "float16")), kind=lm.task)


@pytest.mark.parametrize("model, kind", [(TinySegmenter, "dense"), (TinyEmbedder, "embedding")])
def test_kind_is_inferred_or_declared_and_every_artifact_passes_its_rule(model, kind, tmp_path):
    torch.manual_seed(0)
    job = job_for(model(), tmp_path)
    assert job.kind == kind
    for exporter in (onnx_exporter, tflite):
        for a in exporter.export(job):
            a.parity = exporter.validate(a, job)
            require_parity(a)
            assert a.parity.kind == kind and a.parity.top1_agreement >= a.parity.min_top1_agreement
            if a.variant == "float32":
                assert a.parity.max_abs_diff < 1e-4 and a.parity.top1_agreement > 0.99
            detail = {"dense": "mean_iou", "embedding": "min_cosine"}[kind]
            assert detail in a.parity.details
            assert tuple(a.outputs[0].shape[1:]) == job.reference.shape[1:] or a.format == "tflite"
            if a.format == "tflite" and kind == "dense":  # convolutions only: an app may resize the batch
                assert a.extra["batch"] == "resizable: checked at batch 1 and 8 (resize_tensor_input)"


@pytest.mark.browser
def test_a_dense_map_in_tfjs_is_read_back_in_pytorchs_layout(tmp_path):
    from exporters import tfjs

    torch.manual_seed(0)
    job = job_for(TinySegmenter(), tmp_path)
    model, page = tfjs.export(job)
    for a in (model, page):  # the model first: its parity goes into the bundle's manifest
        a.parity = tfjs.validate(a, job)
        require_parity(a)
    assert model.parity.kind == "dense" and model.parity.max_abs_diff < 1e-4
    assert model.extra["output_layout"] == "nhwc" and model.outputs[0].shape[-1] == 4
