"""The model's own input name (forward's argument) is what every artifact's input is called."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from exporters import onnx as onnx_exporter
from exporters import tfjs, tflite
from exporters.base import ExportJob, ExportOptions
from exporters.onnx import input_name


class PixelNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 5)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(pixel_values).mean((2, 3)))


class Plain(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def test_input_name_comes_from_forward_and_generic_names_become_input():
    assert input_name(PixelNet()) == "pixel_values"
    assert input_name(Plain()) == "input"
    assert input_name(torch.jit.trace(PixelNet(), torch.zeros(1, 3, 8, 8))) == "pixel_values"


@pytest.mark.slow
@pytest.mark.tflite
def test_every_artifact_keeps_the_name(tmp_path):
    torch.manual_seed(0)
    model = PixelNet().eval()
    x = np.random.default_rng(0).standard_normal((24, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x[:8])).numpy()
    job = ExportJob(model=model, example=torch.zeros(1, 3, 8, 8), inputs=x[:8], reference=ref, calib=x[8:],
                    workdir=tmp_path, options=ExportOptions(variants=("float32", "int8")))
    made = [*onnx_exporter.export(job), *tflite.export(job), *tfjs.export(job)]
    assert {a.name: a.inputs[0].name for a in made} == {
        "onnx:float32": "pixel_values", "tflite:float32": "pixel_values", "tflite:int8": "pixel_values",
        "tfjs:float32": "pixel_values", "web-bundle:tfjs": "pixel_values"}
    for a in made[:3]:
        exporter = onnx_exporter if a.format == "onnx" else tflite
        assert exporter.validate(a, job).passed
