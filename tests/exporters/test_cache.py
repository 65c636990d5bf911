"""The conversion cache (exporters/cache.py): an unchanged model converts nothing the second time, a changed
one converts again, a damaged entry is a miss that gets replaced, COMPRESS_CONVERSION_CACHE=off turns it off.
Each test has its own cache folder under tmp_path (tests/conftest.py turns the cache off for all others)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from compressor import models
from compressor.core.artifact import require_parity
from exporters import cache, tf_route, tfjs, tflite
from exporters.base import ExportJob, ExportOptions


@pytest.fixture
def conversion_cache(tmp_path, monkeypatch):
    folder = tmp_path / "conversion-cache"
    monkeypatch.setenv("COMPRESS_CONVERSION_CACHE", str(folder))
    return folder


def make_job(workdir, seed: int = 0, **options) -> ExportJob:
    torch.manual_seed(seed)
    model = models.MobileBlockCNN().eval()
    x = np.random.default_rng(0).standard_normal((24, *model.input_shape[1:])).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x[:16])).numpy()
    workdir.mkdir(parents=True, exist_ok=True)
    return ExportJob(model=model, example=torch.zeros(model.input_shape), inputs=x[:16], reference=ref, calib=x[16:],
                     workdir=workdir, options=ExportOptions(**options))


def counted(monkeypatch, module, name, fake=None):
    """Replace module.name by a wrapper that counts its calls (and runs `fake` instead, when given)."""
    calls = []
    real = getattr(module, name)

    def wrapper(*a, **k):
        calls.append(a)
        return (fake or real)(*a, **k)
    monkeypatch.setattr(module, name, wrapper)
    return calls


def fake_onnx2tf(cmd, src, out, work):
    """A stand-in SavedModel (no TensorFlow): the cache is what is tested."""
    (out / "variables").mkdir(parents=True)
    (out / "saved_model.pb").write_bytes(b"graph" * 100)
    (out / "variables" / "variables.data-00000-of-00001").write_bytes(bytes(range(256)) * 40)
    (out / "model_float32.tflite").write_bytes(b"onnx2tf's own, not kept")


def entries(folder):
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []


# --- the cache itself (no conversion) ------------------------------------------------------------------------

def test_a_folder_comes_back_whole_and_a_damaged_entry_is_a_miss_then_replaced(tmp_path, conversion_cache):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(b"x" * 1000)
    (src / "sub" / "b.bin").write_bytes(b"y" * 10)
    assert cache.store("k1", src, 12.5) is None
    meta = cache.fetch("k1", tmp_path / "got")
    assert meta["seconds"] == 12.5 and (tmp_path / "got" / "sub" / "b.bin").read_bytes() == b"y" * 10
    with open(conversion_cache / "k1" / "data" / "a.bin", "r+b") as f:  # truncated, as a full disk leaves it
        f.truncate(500)
    assert cache.fetch("k1", tmp_path / "got2") is None and not (tmp_path / "got2").exists()
    assert not (conversion_cache / "k1").exists()  # discarded, so the next store can put a whole one there
    assert cache.store("k1", src, 3.0) is None and cache.fetch("k1", tmp_path / "got3")["seconds"] == 3.0


def test_bytes_entries_are_checked_and_off_disables_everything(tmp_path, conversion_cache, monkeypatch):
    assert cache.store_bytes("k2", "model.tflite", b"\x01" * 64, 1.0) is None
    assert cache.fetch_bytes("k2", "model.tflite")[0] == b"\x01" * 64
    (conversion_cache / "k2" / "data" / "model.tflite").write_bytes(b"\x02" * 64)  # same size, other bytes
    assert cache.fetch_bytes("k2", "model.tflite") is None
    monkeypatch.setenv("COMPRESS_CONVERSION_CACHE", "off")
    assert cache.root() is None and cache.store_bytes("k3", "m", b"1", 1.0) is None
    assert cache.fetch_bytes("k3", "m") is None and not (conversion_cache / "k3").exists()
    assert cache.status(None, None, 0.0) == {"cache": "off"}


def test_least_recently_used_entries_are_evicted_past_the_limit(tmp_path, conversion_cache, monkeypatch):
    monkeypatch.setenv("COMPRESS_CONVERSION_CACHE_GB", str(2500 / 1e9))  # room for two 1000-byte entries
    for i, key in enumerate(("old", "used", "new")):
        assert cache.store_bytes(key, "m", bytes([i]) * 1000, 1.0) is None
        if key == "used":
            os.utime(conversion_cache / "old" / "meta.json", (1, 1))  # "old": used long ago
    assert sorted(p.name for p in entries(conversion_cache)) == ["new", "used"]


def test_an_unusable_cache_folder_is_a_miss_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CONVERSION_CACHE", "/proc/no-such-cache")
    note = cache.store("k", tmp_path, 1.0)
    assert note.startswith("not stored in the conversion cache /proc/no-such-cache") and "\n" not in note
    assert cache.fetch("k", tmp_path / "d") is None


# --- the SavedModel step, with a stand-in onnx2tf -------------------------------------------------------------

@pytest.mark.tflite
def test_same_graph_hits_a_changed_model_misses(tmp_path, conversion_cache, monkeypatch):
    calls = counted(monkeypatch, tf_route, "run_onnx2tf", fake_onnx2tf)
    kept = make_job(tmp_path / "a")  # its private folder lives as long as the job
    first = tf_route.saved_model(kept)
    assert len(calls) == 1
    job = make_job(tmp_path / "b")
    again = tf_route.saved_model(job)
    assert len(calls) == 1, "onnx2tf ran although the graph, command and versions were unchanged"
    assert (again / "saved_model.pb").read_bytes() == (first / "saved_model.pb").read_bytes()
    assert not list(again.glob("*.tflite"))  # not cached: tflite.convert makes the .tflite files
    record = tf_route.saved_model_cache(job)
    assert record["saved_model_cache"] == "hit" and record["saved_model_cache_seconds_saved"] >= 0
    tf_route.saved_model(make_job(tmp_path / "c", seed=1))  # other weights: another graph
    assert len(calls) == 2
    tf_route.saved_model(make_job(tmp_path / "d", layout="nhwc"))  # another command line
    assert len(calls) == 3


@pytest.mark.tflite
def test_a_truncated_saved_model_entry_is_a_miss_and_gets_replaced(tmp_path, conversion_cache, monkeypatch):
    calls = counted(monkeypatch, tf_route, "run_onnx2tf", fake_onnx2tf)
    tf_route.saved_model(make_job(tmp_path / "a"))
    (entry,) = entries(conversion_cache)
    weights = entry / "data" / "variables" / "variables.data-00000-of-00001"
    weights.write_bytes(weights.read_bytes()[:100])
    job = make_job(tmp_path / "b")
    made = tf_route.saved_model(job)
    assert len(calls) == 2 and tf_route.saved_model_cache(job)["saved_model_cache"] == "miss"
    assert (made / "variables" / "variables.data-00000-of-00001").stat().st_size == 256 * 40
    tf_route.saved_model(make_job(tmp_path / "c"))  # the replaced entry is whole again
    assert len(calls) == 2


@pytest.mark.tflite
def test_off_runs_onnx2tf_every_time_and_stores_nothing(tmp_path, conversion_cache, monkeypatch):
    monkeypatch.setenv("COMPRESS_CONVERSION_CACHE", "off")
    calls = counted(monkeypatch, tf_route, "run_onnx2tf", fake_onnx2tf)
    for name in ("a", "b"):
        job = make_job(tmp_path / name)
        tf_route.saved_model(job)
    assert len(calls) == 2 and not conversion_cache.exists()
    assert tf_route.saved_model_cache(job) == {"key": None, "saved_model_cache": "off"}


# --- real conversions ------------------------------------------------------------------------------------------

@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.tflite
def test_second_export_converts_nothing_and_gives_identical_checked_artifacts(tmp_path, conversion_cache, monkeypatch):
    onnx2tf = counted(monkeypatch, tf_route, "run_onnx2tf")
    converts = counted(monkeypatch, tflite, "convert")
    with_tfjs = tfjs.converter().exists()
    tfjs_runs = counted(monkeypatch, tfjs, "convert_saved_model")
    runs = []
    for name in ("first", "second"):
        job = make_job(tmp_path / name, variants=("float32", "int8"))
        made = tflite.export(job) + (tfjs.export(job)[:1] if with_tfjs else [])
        for a in made[:2]:
            a.parity = tflite.validate(a, job)
            require_parity(a)
        runs.append(made)
    assert len(onnx2tf) == 1 and len(converts) == 2 and len(tfjs_runs) == (1 if with_tfjs else 0)
    for a, b in zip(*runs):
        assert a.extra["cache"] == "miss" and b.extra["cache"] == "hit", a.name
    for a, b in zip(runs[0][:2], runs[1][:2]):
        assert a.path.read_bytes() == b.path.read_bytes()
    assert runs[0][0].extra["saved_model_cache"] == "miss" and runs[1][0].extra["saved_model_cache"] == "hit"
    assert runs[1][0].extra["saved_model_cache_seconds_saved"] > 1
    assert runs[1][0].convert_seconds < runs[0][0].convert_seconds  # what really happened, not a copy of it
    if with_tfjs:
        first, second = runs[0][2].path, runs[1][2].path
        assert sorted(p.name for p in first.iterdir()) == sorted(p.name for p in second.iterdir())
        assert json.loads((first / "model.json").read_text()) == json.loads((second / "model.json").read_text())
