"""A run killed at any step leaves the previous output intact; the next run cleans up after it."""
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import ROOT


def _kill_when(out, predicate, args, timeout=240, holder=None):
    p = subprocess.Popen([sys.executable, "-m", "compressor.cli", *map(str, args), "--out", str(out), "--overwrite"],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if holder is not None:
        holder["p"] = p
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            if predicate():
                p.send_signal(signal.SIGKILL)
                p.wait()
                return True
            if p.poll() is not None:
                return False
            time.sleep(0.02)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return False


def _staged_file(parent, name):
    def pred():
        return any((d / name).exists() for d in parent.glob(".out.tmp-*"))
    return pred


@pytest.mark.slow
@pytest.mark.parametrize("when", ["model.raw.onnx", "model.onnx"])
def test_sigkill_during_export_keeps_previous_output(teacher_files, tmp_path, when):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("previous")
    killed = _kill_when(out, _staged_file(tmp_path, when), [teacher_files["torchscript"], "--target", "onnx"])
    assert killed, "the run finished before it could be killed"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == "previous"
    # the next run removes what the killed one left beside the folder, and succeeds
    r = subprocess.run([sys.executable, "-m", "compressor.cli", str(teacher_files["torchscript"]), "--out", str(out),
                        "--overwrite"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert os.path.getsize(out / "model.onnx") > 0


def _child_running(proc_holder, needle):
    def pred():
        p = proc_holder.get("p")
        if p is None:
            return False
        try:
            return any(needle in " ".join(c.cmdline()) for c in psutil.Process(p.pid).children(recursive=True))
        except psutil.Error:
            return False
    return pred


@pytest.mark.slow
@pytest.mark.tflite
@pytest.mark.parametrize("step, args, when", [
    ("tflite export", ["--target", "tflite"], "tflite"),
    ("tfjs export", ["--target", "tfjs"], "web"),
])
def test_sigkill_during_tf_exports_keeps_previous_output(teacher_files, tmp_path, step, args, when):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("previous")
    assert _kill_when(out, _staged_file(tmp_path, when), [teacher_files["torchscript"], *args]), step
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == "previous"


@pytest.mark.slow
def test_sigkill_during_benchmark_keeps_previous_output(teacher_files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("previous")
    holder: dict = {}
    assert _kill_when(out, _child_running(holder, "benchmarks.worker"),
                      [teacher_files["torchscript"], "--target", "onnx", "--bench", "cpu"], holder=holder)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == "previous"


@pytest.mark.slow
def test_sigkill_during_distillation_keeps_previous_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("previous")
    ckpt = tmp_path / "ckpt"
    assert _kill_when(out, lambda: any(ckpt.rglob("last.pt")),
                      ["demo", "--student", "auto", "--epochs", "20", "--checkpoint-dir", ckpt])
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == "previous"
