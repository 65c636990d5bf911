"""--min-kept: fallbacks on a miss, a BudgetError with the table of tries, a diverging loss stops a try."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compressor.core.errors import BudgetError
from compressor.distill import budget
from compressor.distill.config import DistillConfig
from compressor.distill.trainer import Diverged, diverging

ROOT = Path(__file__).resolve().parents[2]


def steps(cfg, kind):
    return [name for name, _ in budget.fallbacks(cfg, kind)]


def test_fallbacks_apply_to_the_student_and_the_kind():
    assert steps(DistillConfig(), "logits") == ["more epochs", "lower learning rate", "larger ratio"]
    assert steps(DistillConfig(student="s.pt"), "logits") == ["more epochs", "lower learning rate",
                                                              "another temperature"]
    assert steps(DistillConfig(student="layers:2"), "embedding") == ["more epochs", "lower learning rate"]
    assert steps(DistillConfig(student="s.pt", methods=("cosine",)), "embedding") == ["more epochs",
                                                                                     "lower learning rate"]
    assert len(budget.fallbacks(DistillConfig(), "dense")) == budget.MAX_TRIES - 1


def fake(values, log=None):
    """A run returning the next kept value (an exception instance is raised instead)."""
    seen = []

    def run(c):
        seen.append(c)
        v = values[len(seen) - 1]
        if isinstance(v, Exception):
            raise v
        return f"outcome {len(seen)}", v, "top-1 agreement"
    return run, seen


def test_fallbacks_start_from_the_best_try_until_one_fits(tmp_path):
    cfg = DistillConfig(epochs=10, lr=3e-3, ratio=0.25, checkpoint_dir=str(tmp_path / "ck"))
    run, seen = fake([0.5, 0.8, 0.99])
    out, tries = budget.search(cfg, "logits", run)
    assert out == "outcome 3" and [t.step for t in tries] == ["initial", "more epochs", "lower learning rate"]
    assert [(c.epochs, c.lr) for c in seen] == [(10, 3e-3), (20, 3e-3), (20, 1e-3)]  # from the best so far
    assert [t.ok for t in tries] == [False, False, True]
    assert seen[1].checkpoint_dir.endswith("ck/try-2") and seen[2].checkpoint_dir.endswith("ck/try-3")
    rec = budget.record(tries, cfg, "top-1 agreement")
    assert rec["chosen"] == 2 and rec["tries"][1] | {"seconds": 0} == {
        "step": "more epochs", "epochs": 20, "lr": 3e-3, "temperature": 4.0, "ratio": 0.25, "kept": 0.8,
        "ok": False, "stopped": None, "seconds": 0}


def test_a_miss_after_every_fallback_is_a_budget_error_with_the_table():
    cfg = DistillConfig(ratio=0.25)
    run, seen = fake([0.5, Diverged("training diverged: the loss is nan in epoch 1; lower --lr (now 0.003)"),
                      0.6, 0.7])
    gone = []
    with pytest.raises(BudgetError) as e:
        budget.search(cfg, "logits", run, discard=gone.append)
    msg = str(e.value)
    assert e.value.exit_code == 4 and len(seen) == budget.MAX_TRIES
    assert msg.startswith("the student keeps 70.00% of the teacher (top-1 agreement on the validation split), "
                          "below --min-kept 0.97; tried:\n")
    lines = msg.splitlines()
    assert lines[1].split() == ["#", "step", "epochs", "lr", "T", "ratio", "top-1", "agreement", "result"]
    assert "stopped: diverged: the loss is nan in epoch 1" in lines[3] and lines[5].endswith("below")
    assert lines[-1].startswith("try a larger --ratio") and "lower --min-kept (now 0.97" in lines[-1]
    assert len(lines) == 2 + budget.MAX_TRIES + 1  # head, table, one line of advice
    assert gone == ["outcome 4", "outcome 3", "outcome 1"]  # every try's checkpoints, the diverged one had none


def test_min_kept_zero_accepts_the_first_run():
    run, seen = fake([-0.3])
    out, tries = budget.search(DistillConfig(min_kept=0.0), "regression", run)
    assert out == "outcome 1" and len(seen) == 1 and tries[0].ok


def test_advice_names_the_larger_student_that_applies():
    assert "more layers (--student layers:3)" in budget.advice(DistillConfig(student="layers:2"))
    assert "a larger --student" in budget.advice(DistillConfig(student="s.pt"))


def test_a_diverging_loss_is_named_in_one_line():
    assert diverging(1.0, None, 0) is None and diverging(5.0, 1.0, 3) is None
    assert diverging(math.nan, 1.0, 2) == "the loss is nan in epoch 3"
    assert diverging(12.0, 1.0, 4) == "the loss grew to 12 in epoch 5, over 10x the first epoch's 1"


def test_the_engine_within_budget_fails_and_removes_its_checkpoints(tiny_teacher, small_splits, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = DistillConfig(epochs=1, lr=1e-6, student_init="random", ratio=0.5, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(BudgetError, match="below --min-kept 0.97; tried:") as e:
        budget.distill(tiny_teacher, small_splits, cfg)
    assert "accuracy kept" in str(e.value) and "larger ratio" in str(e.value)
    assert not (tmp_path / ".compress-runs").exists()


def test_the_engine_within_budget_records_the_tries(tiny_teacher, small_splits, cfg):
    out = budget.distill(tiny_teacher, small_splits, cfg.replace(epochs=3, min_kept=0.5))
    assert out.budget["chosen"] == 0 and out.budget["metric"] == "accuracy kept"
    assert out.budget["tries"][0]["kept"] == out.check["kept"] >= 0.5


@pytest.mark.slow
def test_cli_budget_miss_exits_4_and_writes_nothing(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "compressor.cli", "demo", "--student", "auto", "--ratio", "0.1",
                        "--student-init", "random", "--epochs", "1", "--lr", "1e-6", "--out", str(tmp_path / "o"),
                        "--teacher-cache-dir", str(tmp_path / "cache")], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=300, check=False)
    assert r.returncode == 4, r.stderr[-2000:]
    err = r.stderr[r.stderr.index("error: "):]
    assert "below --min-kept 0.97; tried:" in err and "larger ratio" in err and "try a larger --ratio" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / ".compress-runs").exists()


def test_flags_reach_the_config():
    import argparse

    from compressor.core.errors import CompressError
    from compressor.distill.cli_args import add_arguments, from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = from_args(p.parse_args(["--student", "layers:1", "--distill-output", "pooler_output", "--min-kept", "0.9"]))
    assert cfg.distill_output == "pooler_output" and cfg.min_kept == 0.9
    assert from_args(p.parse_args(["--student", "auto"])).min_kept == 0.97
    with pytest.raises(CompressError, match=r"--min-kept 1.5 must be in \[0, 1\]"):
        DistillConfig(min_kept=1.5)
