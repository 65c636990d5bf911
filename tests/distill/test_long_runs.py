"""Long runs (issue 15): --precision, --grad-accum, step checkpoints and a mid-epoch resume, CPU threads, the loss
curve and the progress line."""
import argparse
import math

import pytest
import torch

from compressor.core.errors import CompressError
from compressor.distill import runtime, ui
from compressor.distill.checkpoints import Checkpoints
from compressor.distill.cli_args import add_arguments, from_args
from compressor.distill.config import DistillConfig
from compressor.distill.curve import MAX_POINTS, StepLog
from compressor.distill.engine import distill
from compressor.distill.trainer import train

from .test_trainer import make


class Stop(Exception):
    pass


def test_options_are_checked_and_reach_the_config():
    with pytest.raises(CompressError, match=r"unknown precision 'fp8'; choose one of: fp32, bf16, fp16"):
        DistillConfig(precision="fp8")
    with pytest.raises(CompressError, match="grad_accum must be at least 1"):
        DistillConfig(grad_accum=0)
    with pytest.raises(CompressError, match="--checkpoint-every must be >= 0"):
        DistillConfig(checkpoint_every=-1)
    p = argparse.ArgumentParser()
    add_arguments(p)
    c = from_args(p.parse_args(["--student", "auto", "--precision", "bf16", "--grad-accum", "4",
                                "--checkpoint-every", "100"]))
    assert (c.precision, c.grad_accum, c.checkpoint_every) == ("bf16", 4, 100)
    d = from_args(p.parse_args(["--student", "auto"]))
    assert (d.precision, d.grad_accum, d.checkpoint_every) == ("fp32", 1, 0)


def test_a_precision_the_device_cannot_run_is_one_line(monkeypatch):
    runtime.check_precision("bf16", torch.device("cpu"))  # torch 2.13's CPU autocast runs both
    runtime.check_precision("fp16", torch.device("cpu"))
    monkeypatch.setattr(runtime, "_probe", lambda p, *a: "no float16 kernels" if p == "fp16" else None)
    with pytest.raises(CompressError) as e:
        runtime.check_precision("fp16", torch.device("cpu"))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("--precision fp16 cannot train on cpu with torch ")
    assert msg.endswith("(no float16 kernels); choose one of: fp32, bf16")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_the_student_under_autocast_and_validates_in_fp32(precision, tiny_teacher,
                                                                              small_splits):
    cfg = DistillConfig(epochs=2, precision=precision)
    dm, data, tfn = make(cfg, small_splits, tiny_teacher.module)
    seen = []
    first = dm.student.net[1]
    first.register_forward_hook(lambda m, i, o: seen.append((m.training, o.dtype)))
    res = train(dm, data, cfg, tfn)
    want = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert {d for training, d in seen if training} == {want}
    assert {d for training, d in seen if not training} == {torch.float32}  # validation: as before
    assert all(p.dtype == torch.float32 for p in dm.parameters())  # autocast: the weights stay fp32
    fp32 = cfg.replace(precision="fp32")
    ref = train(make(fp32, small_splits, tiny_teacher.module)[0], data, fp32, tfn)
    # the same run in fp32: losses within rounding of bf16's 8-bit mantissa (0.5% measured), scores alike
    assert [h["loss"] for h in res.history] == pytest.approx([h["loss"] for h in ref.history], rel=0.02)
    assert abs(res.best_score - ref.best_score) <= 0.02


def test_grad_accum_equals_the_larger_batch(tiny_teacher, small_splits):
    """batch 32 x 2 accumulated steps the optimizer as batch 64 does: the same samples per step (the epoch's
    order is split into the same groups), each half's mean weighted by its share. Without batch norm the
    weights match to float rounding."""
    big = DistillConfig(epochs=2, batch_size=64)
    acc = big.replace(batch_size=32, grad_accum=2)
    dm1, data, tfn = make(big, small_splits, tiny_teacher.module)
    r1 = train(dm1, data, big, tfn)
    dm2, _, _ = make(acc, small_splits, tiny_teacher.module)
    r2 = train(dm2, data, acc, tfn)
    assert r1.steps_per_epoch == r2.steps_per_epoch == 6  # 360 samples, 64 per step
    for k, v in dm1.state_dict().items():
        assert torch.allclose(v, dm2.state_dict()[k], atol=1e-5), k
    assert [h["loss"] for h in r2.history] == pytest.approx([h["loss"] for h in r1.history], rel=1e-5)
    r3 = train(make(big, small_splits, tiny_teacher.module)[0], data, big.replace(batch_size=32), tfn)
    assert r3.steps_per_epoch == 12  # without accumulation: twice the steps


@pytest.mark.parametrize("cfg_kw, stop_at, resumed", [
    ({"methods": ("kd", "crd"), "crd_negatives": 16, "augment": "shift"}, 9, (0, 8)),  # mid epoch 2 of 3
    ({"augment": "shift", "precision": "bf16", "grad_accum": 2, "batch_size": 32}, 3, (None, 2)),  # mid epoch 1
    ({"precision": "fp16"}, 9, (0, 8)),  # the GradScaler's state resumes too
])
def test_mid_epoch_resume_equals_uninterrupted(tiny_teacher, small_splits, tmp_path, cfg_kw, stop_at, resumed):
    cfg = DistillConfig(epochs=3, checkpoint_every=2, **cfg_kw)
    dm, data, tfn = make(cfg, small_splits, tiny_teacher.module)
    full = train(dm, data, cfg, tfn)

    def stop(step):
        if step == stop_at:
            raise Stop

    ck = Checkpoints(tmp_path, "fp")
    dm2, _, _ = make(cfg, small_splits, tiny_teacher.module)
    with pytest.raises(Stop):
        train(dm2, data, cfg, tfn, checkpoints=ck, on_step=stop)
    assert not (tmp_path / "best.pt").exists() or resumed[0] is not None  # step checkpoints write last.pt alone
    dm3, _, _ = make(cfg, small_splits, tiny_teacher.module)
    torch.manual_seed(456)  # a resumed process starts from other random states: the checkpoint restores them
    res = train(dm3, data, cfg, tfn, checkpoints=ck, resume=True)
    assert (res.resumed_from, res.resumed_step) == resumed
    assert [h["loss"] for h in res.history] == [h["loss"] for h in full.history]
    assert [h["val"] for h in res.history] == [h["val"] for h in full.history]
    assert res.step_loss == full.step_loss
    for k, v in dm.state_dict().items():
        assert torch.equal(v, dm3.state_dict()[k]), k


def test_step_checkpoints_are_written_every_n_steps(tiny_teacher, small_splits, tmp_path):
    cfg = DistillConfig(epochs=2, checkpoint_every=4)
    dm, data, tfn = make(cfg, small_splits, tiny_teacher.module)
    ck = Checkpoints(tmp_path, "fp")
    seen = []

    def look(step):
        st = torch.load(tmp_path / "last.pt", weights_only=True) if (tmp_path / "last.pt").exists() else None
        seen.append((step, st and st["step"], st and (st["mid"] or {}).get("done")))

    train(dm, data, cfg, tfn, checkpoints=ck, on_step=look)
    # 6 steps per epoch: step 4 mid epoch 1, the end of epoch 1 (6), step 8 (2 into epoch 2), then 12 at its end
    assert [s for s in seen if s[0] in (4, 5, 7, 8, 9)] == [(4, 4, 4), (5, 4, 4), (7, 6, None), (8, 8, 2),
                                                              (9, 8, 2)]


def test_the_fingerprint_ignores_checkpoint_every_and_the_new_options_at_their_defaults():
    from compressor.distill.engine import _options

    base = DistillConfig()
    assert _options(base.replace(checkpoint_every=50)) == _options(base)
    assert "precision" not in _options(base) and "grad_accum" not in _options(base)  # older checkpoints resume
    assert _options(base.replace(precision="bf16")) != _options(base)
    assert _options(base.replace(grad_accum=2)) != _options(base)


def test_the_stage_records_the_curve_and_the_settings(tiny_teacher, small_splits, cfg):
    out = distill(tiny_teacher, small_splits, cfg.replace(epochs=2, grad_accum=2, batch_size=32,
                                                          precision="bf16"))
    st = out.stages[0]
    assert st["steps_per_epoch"] == 6 and [h["epoch"] for h in st["history"]] == [0, 1]
    assert {"loss", "val", "seconds"} <= set(st["history"][0])
    assert [s for s, _ in st["step_loss"]] == list(range(1, 13))
    assert out.threads is None or out.threads >= 1


def test_threads_plan():
    plan = runtime.plan_threads
    assert plan({}, 1, 8, current=32, default=32) == 8  # torch counted the machine, the process may use 8
    assert plan({}, 4, 8, current=32, default=32) == 2  # 4 torchrun processes on this machine share them
    assert plan({}, 16, 8, current=32, default=32) == 1
    assert plan({"OMP_NUM_THREADS": "3"}, 1, 8, current=3, default=3) is None  # the user's choice
    assert plan({"MKL_NUM_THREADS": "3"}, 1, 8, current=8, default=8) is None
    assert plan({}, 1, 8, current=1, default=32) is None  # torch.set_num_threads(1) by the caller
    assert plan({}, 1, 8, current=8, default=32, ours=8) == 8  # ours from an earlier run: set again
    # torchrun's own OMP_NUM_THREADS=1 (it sets it for several processes per machine) gives way to the share
    assert plan({"OMP_NUM_THREADS": "1"}, 2, 8, current=1, default=1) == 4
    assert plan({"OMP_NUM_THREADS": "1"}, 1, 8, current=1, default=1) is None


def test_set_threads_follows_the_plan(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 3)
    torch.set_num_threads(2)
    monkeypatch.setattr(runtime, "_TORCH_DEFAULT", 2)  # as if torch chose it
    monkeypatch.setattr(runtime, "_set_by_us", None)
    assert runtime.set_threads(1) == 3 and torch.get_num_threads() == 3
    torch.set_num_threads(1)  # now the caller chooses: left alone
    assert runtime.set_threads(1) == 1
    # (tests/conftest.py restores torch's thread count after each test)


def test_step_log_stays_bounded_and_averages():
    log = StepLog()
    for step in range(1, 10_001):
        log.add(step, float(step))
    pts = log.curve()
    assert len(pts) <= 2 * MAX_POINTS and pts[0][0] == 1
    width = log.width
    assert pts[1][0] == 1 + width and pts[0][1] == pytest.approx((1 + width) / 2)  # mean of steps 1..width
    again = StepLog(log.state())
    again.add(10_001, 10_001.0)
    log.add(10_001, 10_001.0)
    assert again.curve() == log.curve()
    log.add(10_002, float("nan"))  # not drawn
    assert all(math.isfinite(v) for _, v in log.curve())


def test_progress_shows_samples_per_second_and_eta(monkeypatch):
    from rich.console import Console

    clock = iter([100.0, 102.0, 104.0, 104.0])
    monkeypatch.setattr(ui.time, "perf_counter", lambda: next(clock))
    bar = ui.Bar(Console(quiet=True), "student", 3)
    bar.start(30, 10)  # resumed at step 10 of 30
    bar.advance(0, 1.0, 0.5, samples=64)
    rate, left = bar.rate()  # 64 samples in 2 s; 1 step took 2 s: 19 steps left
    assert rate == 32 and left == 19 * 2
    assert bar.progress.tasks[0].fields["speed"] == "32 samples/s ETA 0:38"
    assert ui.eta_text(3725) == "ETA 1:02:05" and ui.eta_text(float("nan")) == "ETA -"


def test_cli_errors_of_the_new_options_are_one_line(tmp_path, capsys):
    from compressor.cli import main

    assert main(["demo", "--student", "auto", "--precision", "fp8", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown precision 'fp8'; choose one of: fp32, bf16, fp16"
    assert main(["demo", "--student", "auto", "--grad-accum", "0", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == "error: grad_accum must be at least 1"
    assert not (tmp_path / "o").exists()
