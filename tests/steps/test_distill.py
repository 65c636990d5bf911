"""The distill step through the real command line: demo end to end, kill-and-resume, torchrun."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process: the runs are compared exactly


def compress(*args, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "compressor.cli", "demo", "--student", "auto", "--ratio", "0.25",
            "--teacher-cache-dir", str(tmp / "cache"), *map(str, args)]


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.heavy
@pytest.mark.slow
def test_demo_student_auto_exports_onnx_with_parity(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(check=False, args=compress("--epochs", 2, "--out", out, "--checkpoint-dir", tmp_path / "ck", tmp=tmp_path),
                       capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    m = manifest(out)
    t, s = m["teacher"], m["student"]
    for d in (t, s):
        assert {"parameters", "macs", "size_bytes", "test_accuracy"} <= set(d)
    assert s["parameters"] <= 0.25 * t["parameters"] and s["macs"] < t["macs"] and s["size_bytes"] < t["size_bytes"]
    assert s["test_accuracy"] > 0.9 and (out / "student.pt").exists()
    onnx = [a for a in m["artifacts"] if a["format"] == "onnx"]
    assert onnx and all(a["parity"]["passed"] for a in onnx)
    assert "teacher vs student" in r.stderr


def test_cli_errors_are_one_line(tmp_path, capsys):
    from compressor.cli import main

    assert main(["demo", "--method", "kd", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: --method only apply to distillation")
    assert main(["demo", "--student", "auto", "--method", "kd,fitnet", "--out", str(tmp_path / "o")]) == 2
    assert "unknown distillation method 'fitnet'; choose one of: labels, kd" in capsys.readouterr().err
    assert main(["demo", "--student", "auto", "--recipe", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: recipe") and "not found" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.heavy
@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    epochs = 12
    ck = tmp_path / "ck"
    # the uninterrupted reference runs beside the one that gets killed (two cores, less waiting)
    straight_run = subprocess.Popen(compress("--epochs", epochs, "--out", tmp_path / "b", "--checkpoint-dir",
                                             tmp_path / "ck2", tmp=tmp_path),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    proc = subprocess.Popen(compress("--epochs", epochs, "--out", tmp_path / "a", "--checkpoint-dir", ck, tmp=tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT)
    last = ck / "stage-0" / "last.pt"
    deadline = time.time() + 90
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # right after the first checkpoint: mid-training
    assert proc.wait() == -signal.SIGKILL
    assert last.exists() and not (ck / "stage-0" / "done.pt").exists() and not (tmp_path / "a").exists()
    r = subprocess.run(check=False, args=compress("--epochs", epochs, "--out", tmp_path / "a", "--checkpoint-dir", ck, "--resume",
                                tmp=tmp_path), capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    _, err = straight_run.communicate(timeout=120)
    assert straight_run.returncode == 0, err[-2000:]
    resumed, straight = manifest(tmp_path / "a"), manifest(tmp_path / "b")
    stage = resumed["distillation"]["stages"][0]
    assert stage["resumed_from"] is not None and stage["resumed_from"] < epochs - 1
    assert resumed["student"]["sha256"] == straight["student"]["sha256"]  # the same weights, bit for bit
    assert stage["epochs_run"] == straight["distillation"]["stages"][0]["epochs_run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.heavy
@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    """2 ranks (gloo, CPU) against 1 process. With a student without batch norm the averaged gradients equal
    one process's exactly (up to summation order); batch norm would normalise per rank (no SyncBatchNorm on CPU)."""
    import torch

    from compressor.models import DigitsMLP

    torch.manual_seed(0)
    torch.save(DigitsMLP().state_dict(), tmp_path / "student.pt")  # 4,810 parameters
    common = ["--student", tmp_path / "student.pt", "--student-arch", "compressor.models:DigitsMLP",
              "--epochs", 3, "--method", "kd,dkd:0.5", "--min-kept", 0,  # one try each: the runs compare alike
              # DDP's no_sync on the accumulated batches, and a step checkpoint's collective, on both sides
              "--batch-size", 32, "--grad-accum", 2, "--checkpoint-every", 5]
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run(check=False, args=[str(torchrun), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
                        str(free_port()), "-m", "compressor.cli"]
                       + compress(*common, "--out", tmp_path / "ddp", "--checkpoint-dir", tmp_path / "ck1",
                                  tmp=tmp_path)[3:], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    r1 = subprocess.run(check=False, args=compress(*common, "--out", tmp_path / "one", "--checkpoint-dir", tmp_path / "ck2",
                                 tmp=tmp_path), capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert r1.returncode == 0, r1.stderr[-2000:]
    ddp, one = manifest(tmp_path / "ddp"), manifest(tmp_path / "one")
    assert ddp["distillation"]["distributed_world_size"] == 2 and one["distillation"]["distributed_world_size"] == 1
    assert ddp["distillation"]["threads"] == 1  # OMP_NUM_THREADS=1 under torchrun: the share of 2 cores, 2 ranks
    h_ddp, h_one = ddp["distillation"]["stages"][0]["history"], one["distillation"]["stages"][0]["history"]
    # rel 1e-5: an odd last batch weighted per rank instead of per sample drifted by 2e-4 after one epoch
    assert [h["loss"] for h in h_ddp] == pytest.approx([h["loss"] for h in h_one], rel=1e-5)
    assert [h["val"] for h in h_ddp] == [h["val"] for h in h_one]
    assert abs(ddp["student"]["test_accuracy"] - one["student"]["test_accuracy"]) <= 0.003  # <= 1 of 360 samples
    # rank 0 alone wrote the checkpoints and the output; the teacher cache was filled once
    assert (tmp_path / "ck1" / "stage-0" / "done.pt").exists()
    assert not list(tmp_path.glob(".ddp.tmp-*"))


def test_the_manifest_records_how_the_student_trained(tmp_path):
    """The distillation section: device, precision, batch, accumulation, world size, threads, and per stage the
    loss curve (per epoch and per step). In-process with a tiny teacher: a second or two."""
    import torch
    from rich.console import Console

    from compressor import data as datasets
    from compressor.config import RunConfig
    from compressor.distill.config import DistillConfig
    from compressor.loading import from_module
    from compressor.models import DigitsMLP
    from compressor.steps.distill import distill
    from compressor.steps.state import State

    torch.manual_seed(0)
    d = DistillConfig(student="auto", ratio=0.5, epochs=2, batch_size=32, grad_accum=2, precision="bf16",
                      checkpoint_every=3, min_kept=0, cache_dir=str(tmp_path / "cache"),
                      checkpoint_dir=str(tmp_path / "ck"))
    s = State(RunConfig(model="demo", distill=d), Console(quiet=True), workdir=tmp_path)
    s.teacher = from_module(DigitsMLP(hidden=32), name="tiny")
    all_ = datasets.split(datasets.load_digits(), seed=0)
    tr = all_.train
    s.splits = datasets.Splits(datasets.Dataset(tr.x[:256], tr.y[:256], tr.classes, tr.source), all_.val, all_.test)
    distill(s)
    sec = s.sections["distillation"]
    assert {k: sec[k] for k in ("device", "precision", "batch_size", "grad_accum", "effective_batch_size",
                                "distributed_world_size", "checkpoint_every")} == {
        "device": "cpu", "precision": "bf16", "batch_size": 32, "grad_accum": 2, "effective_batch_size": 64,
        "distributed_world_size": 1, "checkpoint_every": 3}
    assert "threads" in sec
    st = sec["stages"][0]
    assert st["steps_per_epoch"] == 4 and len(st["history"]) == 2 and len(st["step_loss"]) == 8
    assert {"epoch", "loss", "val", "seconds"} <= set(st["history"][0])
