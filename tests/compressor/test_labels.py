"""Class names from the data's folders reach the manifest, the ONNX model's metadata and the .tflite."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from tests.compressor.test_random_data import RGBNet
from tests.conftest import run_cli

NAMES = ["bird", "cat", "dog"]


@pytest.mark.slow
@pytest.mark.tflite
def test_folder_names_are_written_into_every_artifact(tmp_path):
    rng = np.random.default_rng(0)
    for name in NAMES:
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "data" / name / f"{i}.png")
    torch.manual_seed(0)
    model = RGBNet()
    model.fc = torch.nn.Linear(8, 3)
    torch.jit.save(torch.jit.trace(model.eval(), torch.zeros(1, 3, 32, 32)), str(tmp_path / "m.pt"))
    out = tmp_path / "out"
    p = run_cli(tmp_path / "m.pt", "--input-shape", "1,3,32,32", "--data", tmp_path / "data",
                "--target", "onnx,tflite", "--variants", "float32", "--out", out)
    assert p.returncode == 0, p.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["labels"] == NAMES and "centre-cropped to 32x32" in m["data"]["scale"]
    props = {q.key: q.value for q in onnx.load(str(out / "model.onnx")).metadata_props}
    assert json.loads(props["labels"]) == NAMES
    packed = zipfile.ZipFile(out / "tflite" / "model_float32.tflite").read("labels.txt").decode()
    assert packed.split() == NAMES
    assert all(a["parity"]["passed"] for a in m["artifacts"])  # the packed file does not disturb the model
