"""A run killed at any step leaves the previous output intact; the next run cleans up after it.
SIGTERM is handled as Ctrl-C is: everything removed, one line, exit 143."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from compressor.outputs import staged
from compressor.runs import Terminated, sigterm_as_interrupt
from tests.conftest import ROOT

PREVIOUS = json.dumps({"schema": 1, "artifacts": [], "note": "previous"})  # an earlier output of compress


def previous_output(out):
    out.mkdir()
    (out / "manifest.json").write_text(PREVIOUS)


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
    previous_output(out)
    killed = _kill_when(out, _staged_file(tmp_path, when), [teacher_files["torchscript"], "--target", "onnx"])
    assert killed, "the run finished before it could be killed"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == PREVIOUS
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
@pytest.mark.heavy
def test_sigkill_during_tf_exports_keeps_previous_output(teacher_files, tmp_path, step, args, when):
    out = tmp_path / "out"
    previous_output(out)
    assert _kill_when(out, _staged_file(tmp_path, when), [teacher_files["torchscript"], *args]), step
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == PREVIOUS


@pytest.mark.slow
def test_sigkill_during_benchmark_keeps_previous_output(teacher_files, tmp_path):
    out = tmp_path / "out"
    previous_output(out)
    holder: dict = {}
    assert _kill_when(out, _child_running(holder, "benchmarks.worker"),
                      [teacher_files["torchscript"], "--target", "onnx", "--bench", "cpu"], holder=holder)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == PREVIOUS


@pytest.mark.slow
def test_sigkill_during_distillation_keeps_previous_output(tmp_path):
    out = tmp_path / "out"
    previous_output(out)
    ckpt = tmp_path / "ckpt"
    assert _kill_when(out, lambda: any(ckpt.rglob("last.pt")),
                      ["demo", "--student", "auto", "--epochs", "20", "--checkpoint-dir", ckpt])
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == PREVIOUS


# issue 13, case 9: SIGTERM (docker stop, CI cancellation, timeout)

def _signal_when(tmp_path, args, predicate, sig, timeout=240):
    """Run the CLI with its own TMPDIR; send `sig` once predicate(proc) holds. Returns (proc, stderr, pids of
    the processes it had started)."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    err = tmp_path / "stderr.txt"
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    with err.open("w") as f:
        p = subprocess.Popen([sys.executable, "-m", "compressor.cli", *map(str, args), "--overwrite"], cwd=ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=f)
        seen: set[int] = set()
        t0 = time.time()
        try:
            while time.time() - t0 < timeout and p.poll() is None:
                with contextlib.suppress(psutil.Error):
                    seen |= {c.pid for c in psutil.Process(p.pid).children(recursive=True)}
                if predicate(p):
                    p.send_signal(sig)
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the run finished before it could be signalled")
            p.wait(120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    return p, err.read_text(), seen


def _has_child(needle):
    def pred(p):
        try:
            return any(needle in " ".join(c.cmdline()) for c in psutil.Process(p.pid).children(recursive=True))
        except psutil.Error:
            return False
    return pred


def _when(name, tmp_path):
    """When to signal the run: while it writes the ONNX file, runs a benchmark worker, or a browser bench
    has its files in the run folder."""
    if name == "export":
        writing = _staged_file(tmp_path / "work", "model.raw.onnx")
        return lambda p: writing()
    if name == "cpu bench":
        return _has_child("benchmarks.worker")
    return lambda p: any((tmp_path / "tmp").glob("compress-run-*/compress-bench-web-*/*"))


@pytest.mark.slow
@pytest.mark.parametrize("when, extra", [
    pytest.param("export", [], id="export"),
    pytest.param("cpu bench", ["--bench", "cpu"], id="cpu-bench"),
    pytest.param("browser bench", ["--bench", "browser"], marks=pytest.mark.browser, id="browser-bench"),
])
def test_sigterm_cleans_up_and_exits_143_with_one_line(tmp_path, when, extra):
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    previous_output(out)
    p, err, children = _signal_when(tmp_path, ["demo", "--target", "onnx", *extra, "--out", out],
                                    _when(when, tmp_path), signal.SIGTERM)
    assert p.returncode == 143, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == ["error: terminated (SIGTERM); the previous output is unchanged"], err
    assert err.strip().splitlines()[-1] == errors[0] and "Traceback" not in err, err
    assert sorted(x.name for x in out.parent.iterdir()) == ["out"]  # no lock, no temporary folder
    assert (out / "manifest.json").read_text() == PREVIOUS
    assert list((tmp_path / "tmp").iterdir()) == []  # the run folder and all in it are gone
    time.sleep(0.5)
    left = [pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"{when}: processes outlived the run"


@pytest.mark.slow
def test_sigkilled_run_folder_is_swept_by_the_next_run(tmp_path):
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    previous_output(out)
    writing = _staged_file(tmp_path / "work", "model.raw.onnx")
    p, _, _ = _signal_when(tmp_path, ["demo", "--target", "onnx", "--out", out], lambda _: writing(), signal.SIGKILL)
    assert p.returncode == -signal.SIGKILL
    assert [d.name.split("-")[2] for d in (tmp_path / "tmp").iterdir()] == [str(p.pid)]  # what SIGKILL leaves
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    r = subprocess.run([sys.executable, "-m", "compressor.cli", "demo", "--target", "onnx", "--out", str(out),
                        "--overwrite"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "tmp").iterdir()) == []
    assert sorted(x.name for x in out.parent.iterdir()) == ["out"]


def test_a_swallowed_sigterm_still_stops_new_processes_and_publishing(tmp_path):
    """torch turns an exception raised inside its C++ into RuntimeError, and a broad `except` may then
    swallow it: after a SIGTERM no subprocess starts and nothing is published all the same."""
    received: list[int] = []
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_as_interrupt(received), staged(out) as tmp:
        (tmp / "a.txt").write_text("a")
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except Terminated:
            pass  # swallowed
        with pytest.raises(Terminated):
            subprocess.run(["true"], check=False)
    assert received == [signal.SIGTERM]
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before  # restored; and new processes start again
    assert subprocess.run(["true"], check=False).returncode == 0
