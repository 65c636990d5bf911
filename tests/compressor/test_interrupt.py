"""A run killed at any step leaves the previous output intact; the next run cleans up after it."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT


def _kill_when(out, predicate, args, timeout=240):
    p = subprocess.Popen([sys.executable, "-m", "compressor.cli", *map(str, args), "--out", str(out), "--overwrite"],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
