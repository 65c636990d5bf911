"""Models and data that were tracebacks, memory blow-ups or silent nonsense: one line, exit 2, nothing written
(issue 13), as the CLI runs them."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from compressor.loading import save_torchscript
from tests.compressor.test_loading import Nested, TwoOutputs
from tests.conftest import run_cli


class TokenIds(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.fc = torch.nn.Embedding(100, 8), torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.embed(x.flatten(1)).mean(1))


def digits_npz(path: Path, n: int, **change) -> Path:
    from sklearn.datasets import load_digits

    d = load_digits()
    arrays = {"x": (d.images[:n] / 16).astype(np.float32).reshape(n, 64), "y": d.target[:n]} | change
    np.savez(path, **arrays)
    return path


def make(case: str, tmp: Path) -> list:
    """The arguments of one bad run (its files written into tmp)."""
    if case == "nested":
        torch.jit.save(torch.jit.script(Nested()), str(tmp / "m.pt"))
        return [tmp / "m.pt", "--input-shape", "1,1,8,8", "--data", "digits"]
    if case == "int64-model":
        save_torchscript(TokenIds(), tmp / "m.pt", (1, 1, 8, 8), "int64")
        return [tmp / "m.pt", "--data", "digits"]
    if case == "non-utf8-name":
        save_torchscript(Nested(), tmp / os.fsdecode(b"m\xff.pt"), (1, 1, 8, 8))
        return [tmp / os.fsdecode(b"m\xff.pt"), "--data", "digits"]
    if case == "class-names":  # the model names its classes; the folders name others
        from PIL import Image

        mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
        save_torchscript(mlp, tmp / "m.pt", (1, 1, 8, 8), classes=("zero", "one", "two", "three", "four", "five",
                                                                   "six", "seven", "eight", "nine"))
        for name in ("0", "1", ".ipynb_checkpoints"):
            (tmp / "imgs" / name).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp / "imgs" / name / "a.png")
        return [tmp / "m.pt", "--data", tmp / "imgs"]
    if case == "fits-data-not-model":  # the data check passes; the model's own first forward pass says no
        cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 10))
        torch.jit.save(torch.jit.script(cnn), str(tmp / "m.pt"))
        return [tmp / "m.pt", "--input-shape", "1,64", "--data", digits_npz(tmp / "d.npz", 40)]
    save_torchscript(TwoOutputs().fc, tmp / "m.pt", (1, 64))
    data = {"one-sample": lambda: digits_npz(tmp / "d.npz", 1),
            "three-samples": lambda: digits_npz(tmp / "d.npz", 3),
            "huge-label": lambda: digits_npz(tmp / "d.npz", 40, y=np.r_[2**40, np.zeros(39, np.int64)]),
            "complex": lambda: digits_npz(tmp / "d.npz", 40, x=np.zeros((40, 64), np.complex64)),
            "huge-shape": lambda: "digits"}[case]()
    shape = "1,3,8192,8192" if case == "huge-shape" else "1,64"
    return [tmp / "m.pt", "--input-shape", shape, "--data", data]


@pytest.mark.parametrize("case, msg", [
    ("nested", "output 'output_1' is not a tensor (nested outputs such as caches are not supported)"),
    ("int64-model", "the model takes int64 inputs (such as token ids) but digits holds float32 values"),
    ("one-sample", "has 1 sample; at least 20 are needed"),
    ("three-samples", "has 3 samples; at least 20 are needed"),
    ("huge-label", "labels go up to 1099511627776 but the model has 10 outputs"),
    ("complex", "x holds complex64 (complex numbers) values"),
    ("fits-data-not-model", "m.pt fails on an input of shape (1, 64)"),
    ("huge-shape", "takes inputs of shape (3, 8192, 8192), and --data digits (the default"),  # was 45 s, 6 GB
    ("class-names", "class folders 0, 1 in "),  # hidden .ipynb_checkpoints is not one of them
    ("non-utf8-name", "m\\udcff.pt: the model's output 'output_1' is not a tensor"),  # read, not "may be truncated"
])
def test_one_line_error_and_nothing_written(tmp_path, case, msg):
    args = make(case, tmp_path)
    before = set(tmp_path.iterdir())
    r = run_cli(*args, "--target", "onnx", "--out", tmp_path / "out", timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], r.stderr
    assert set(tmp_path.iterdir()) == before


def test_small_uint8_data_is_scaled_warned_about_and_recorded(teacher_files, tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(tmp_path / "d.npz", x=(d.images[:300] * 255 / 16).astype(np.uint8)[:, None], y=d.target[:300])
    r = run_cli(teacher_files["torchscript"], "--data", tmp_path / "d.npz", "--target", "onnx",
                "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "warning: " in r.stderr and "has only 300 samples" in r.stderr
    section = json.loads((tmp_path / "out" / "manifest.json").read_text())["data"]
    assert section["scale"].startswith("uint8 / 255") and section["samples"] == 300
    assert section["min_samples"] == 20 and section["warn_below_samples"] == 500 and "300" in section["warning"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["teacher"]["test_accuracy"] > 0.9
