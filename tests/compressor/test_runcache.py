"""The run cache: an unchanged run republishes its earlier, checked output; any change runs again."""
from __future__ import annotations

import json

import pytest
import torch

from compressor import compress, runcache
from compressor.config import RunConfig
from compressor.distill.config import DistillConfig


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CONVERSION_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    path = tmp_path / "m.pt"
    torch.jit.trace(m, torch.zeros(1, 1, 8, 8)).save(str(path))
    return path


def run(model, out, **options) -> dict:
    compress(str(model), out=out, targets=("onnx",), overwrite=True, input_shape=(1, 1, 8, 8), **options)
    return json.loads((out / "manifest.json").read_text())


def test_an_unchanged_run_is_restored_byte_for_byte_and_converts_nothing(model, tmp_path, monkeypatch):
    first = run(model, tmp_path / "a")
    assert "run_cache" not in first
    import exporters.onnx

    def no_export(*_a, **_k):
        raise AssertionError("converted again")
    monkeypatch.setattr(exporters.onnx, "export", no_export)
    again = run(model, tmp_path / "b")  # another --out: where the output goes is not part of the key
    assert again["run_cache"]["status"] == "hit" and again["run_cache"]["checked"] == first["created"]
    assert [a["sha256"] for a in again["artifacts"]] == [a["sha256"] for a in first["artifacts"]]
    assert again["artifacts"][0]["parity"] == first["artifacts"][0]["parity"]
    assert (tmp_path / "b" / "model.onnx").read_bytes() == (tmp_path / "a" / "model.onnx").read_bytes()


def test_a_changed_model_option_or_damaged_entry_runs_again(model, tmp_path):
    run(model, tmp_path / "a")
    assert "run_cache" not in run(model, tmp_path / "a", seed=1)  # another option
    torch.jit.trace(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval(),
                    torch.zeros(1, 1, 8, 8)).save(str(model))
    assert "run_cache" not in run(model, tmp_path / "a")  # other weights
    for f in (tmp_path / "cache").rglob("model.onnx"):
        f.write_bytes(f.read_bytes()[:-10])  # truncated in the cache: a miss, never a damaged artifact
    assert "run_cache" not in run(model, tmp_path / "a")
    assert run(model, tmp_path / "a")["run_cache"]["status"] == "hit"  # stored again by the run before


def test_training_benchmarking_and_cache_off_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CONVERSION_CACHE", str(tmp_path / "cache"))
    assert runcache.uncacheable(RunConfig("demo", distill=DistillConfig())) == "the run trains a student"
    assert runcache.uncacheable(RunConfig("demo", bench=("cpu",))) == "the run benchmarks"
    assert runcache.key(RunConfig("demo", bench=("cpu",)), []) is None
    assert runcache.key(RunConfig("demo"), []) is not None
    monkeypatch.setenv("COMPRESS_CONVERSION_CACHE", "off")
    assert runcache.key(RunConfig("demo"), []) is None
