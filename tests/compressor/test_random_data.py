"""A user's model without data: the default digits are named when they do not fit, and --data random
gives an export-only run on inputs of the model's shape (parity, no accuracy)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from compressor import data as datasets
from tests.conftest import run_cli


class RGBNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rgb") / "rgb.pt"
    torch.jit.save(torch.jit.trace(RGBNet().eval(), torch.zeros(1, 3, 32, 32)), str(path))
    return path


def test_random_inputs_have_the_models_shape_and_dtype():
    d = datasets.random_inputs((1, 3, 4, 4), "float32", n=30)
    assert d.x.shape == (30, 3, 4, 4) and d.x.dtype == "float32" and d.y is None and d.source == "random"
    tokens = datasets.random_inputs((1, 12), "int64", n=30)
    assert tokens.x.dtype == "int64" and 0 <= tokens.x.min() and tokens.x.max() < 100


def test_the_default_digits_are_named_when_they_do_not_fit(rgb, tmp_path):
    p = run_cli(rgb, "--input-shape", "1,3,32,32", "--out", tmp_path / "o")
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "--data digits (the default" in p.stderr and "--data random" in p.stderr
    assert not (tmp_path / "o").exists()


def test_random_data_refuses_distillation_and_quantization(rgb, tmp_path):
    p = run_cli(rgb, "--input-shape", "1,3,32,32", "--data", "random", "--quantize", "int8", "--out", tmp_path / "o")
    assert p.returncode == 2 and "export-only" in p.stderr


@pytest.mark.slow
@pytest.mark.tflite
def test_export_only_run_on_random_inputs(rgb, tmp_path):
    out = tmp_path / "o"
    p = run_cli(rgb, "--input-shape", "1,3,32,32", "--data", "random", "--target", "onnx,tflite", "--out", out)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "parity on random inputs" in p.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["data"]["random"] and m["data"]["labelled"] is False and "int8" in m["data"]["skipped"]
    names = [a["name"] for a in m["artifacts"]]
    assert names == ["onnx:float32", "tflite:float32", "tflite:float16", "tflite:dynamic-int8"]
    assert all(a["parity"]["passed"] and a.get("accuracy") is None for a in m["artifacts"])
