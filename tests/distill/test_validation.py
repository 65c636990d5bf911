"""Issue 13, case 5 and the recipe/cache tracebacks: every float option is checked up front (NaN and Inf
included), a failed run leaves no default checkpoint folder, and unusable recipes or caches are one line."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from compressor import data as datasets
from compressor.core.errors import CompressError
from compressor.distill import cache, recipe, trainer
from compressor.distill.config import DistillConfig
from compressor.distill.engine import RUNS_DIR, distill
from tests.conftest import run_cli

FLOATS = ["ratio", "temperature", "alpha", "lr", "weight_decay", "dkd_alpha", "dkd_beta", "crd_temperature",
          "crd_momentum"]


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_every_float_option_refuses_nan_and_inf(name, bad):
    with pytest.raises(CompressError) as e:
        DistillConfig(**{name: bad})
    msg = str(e.value)
    assert "\n" not in msg and name.split("_")[-1] in msg and "finite number" in msg


@pytest.mark.parametrize("kwargs, fragment", [
    ({"lr": 5.0}, "--lr 5.0 must be in (0, 1]"),
    ({"lr": 0.0}, "(0, 1]"),
    ({"temperature": -1.0}, "--temperature -1.0 must be > 0"),
    ({"weight_decay": -0.1}, "weight_decay -0.1 must be >= 0"),
    ({"crd_momentum": 1.0}, "crd_momentum 1.0 must be in [0, 1)"),
    ({"dkd_beta": -8.0}, "dkd_beta -8.0 must be >= 0"),
    ({"methods": ("kd", "dkd"), "weights": (1.0, math.nan)}, "--method dkd weight nan must be a finite number"),
    ({"seed": -1}, "seed -1 must be a whole number in [0, 4294967295]"),
    ({"seed": 2**40}, "must be a whole number in [0, 4294967295]"),
])
def test_out_of_range_values_name_the_option_and_the_range(kwargs, fragment):
    with pytest.raises(CompressError) as e:
        DistillConfig(**kwargs)
    assert fragment in str(e.value)


@pytest.mark.parametrize("text, fragment", [
    ("temperature: .nan\n", "r.yaml: --temperature nan must be a finite number > 0"),
    ("lr: .inf\n", "r.yaml: --lr inf must be a finite number in (0, 1]"),
    ("lr: nan\n", "--lr nan must be a finite number"),
    ("epochs: .inf\n", "r.yaml.epochs: expected a whole number, got inf"),
    ("epochs: 2.5\n", "expected a whole number, got 2.5"),
    ("epochs: 1e400\n", "r.yaml.epochs: expected int"),
])
def test_recipe_values_are_checked_like_flags(text, fragment):
    with pytest.raises(CompressError) as e:
        recipe.parse(text, "r.yaml")
    assert fragment in str(e.value)


@pytest.mark.parametrize("text", [
    "[" * 3000 + "]" * 3000,  # PyYAML's parser itself recurses: a RecursionError traceback before
    "a:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(1500)),
    "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" if i else "a0: &a0 [1]\n" for i in range(25)),
    "x: &x [*x]\n",  # a list that holds itself
    "methods: " + "[" * 20 + "kd" + "]" * 20 + "\n",
])
def test_deep_or_self_referencing_recipes_are_one_line_errors(text):
    with pytest.raises(CompressError, match="nests lists or mappings") as e:
        recipe.parse(text, "deep.yaml")
    assert "\n" not in str(e.value)


def test_nan_temperature_on_the_command_line_fails_before_training(tmp_path):
    r = run_cli("demo", "--student", "auto", "--epochs", "1", "--temperature", "nan", "--out", "o", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == \
        "error: --temperature nan must be a finite number > 0 (typical: 2 to 8)"
    assert not list(tmp_path.iterdir())  # no .compress-runs, no output
    (tmp_path / "r.yaml").write_text("lr: .inf\n")
    r = run_cli("demo", "--recipe", "r.yaml", "--out", "o", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "r.yaml: --lr inf must be a finite" in r.stderr


def nan_splits(splits: datasets.Splits) -> datasets.Splits:
    tr = splits.train
    x = tr.x.copy()
    x[5] = np.nan
    return datasets.Splits(datasets.Dataset(x, tr.y, tr.classes, tr.source), splits.val, splits.test)


def test_a_diverging_run_stops_in_its_first_epoch_and_saves_no_checkpoint(tiny_teacher, small_splits, cfg,
                                                                         tmp_path):
    with pytest.raises(CompressError, match=r"training diverged: the loss is nan in epoch 1; lower --lr"):
        distill(tiny_teacher, nan_splits(small_splits), cfg.replace(epochs=3))
    assert not list(Path(cfg.checkpoint_dir).rglob("*.pt"))


def fail_after_first_checkpoint(monkeypatch):
    real = trainer.Checkpoints.save

    def save(self, state):
        real(self, state)
        raise CompressError("boom")
    monkeypatch.setattr(trainer.Checkpoints, "save", save)


def test_a_failed_run_removes_the_default_checkpoint_folder_it_made(tiny_teacher, small_splits, cfg, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    fail_after_first_checkpoint(monkeypatch)
    with pytest.raises(CompressError, match="boom"):
        distill(tiny_teacher, small_splits, cfg.replace(checkpoint_dir=None))
    assert not (tmp_path / RUNS_DIR).exists()
    # a .compress-runs that was there before (other runs' checkpoints) stays; only this run's folder goes
    (tmp_path / RUNS_DIR / "other").mkdir(parents=True)
    with pytest.raises(CompressError, match="boom"):
        distill(tiny_teacher, small_splits, cfg.replace(checkpoint_dir=None))
    assert [p.name for p in (tmp_path / RUNS_DIR).iterdir()] == ["other"]


def test_a_checkpoint_dir_the_user_asked_for_is_kept_for_resume(tiny_teacher, small_splits, cfg, monkeypatch):
    fail_after_first_checkpoint(monkeypatch)
    with pytest.raises(CompressError, match="boom"):
        distill(tiny_teacher, small_splits, cfg)
    assert (Path(cfg.checkpoint_dir) / "stage-0" / "last.pt").is_file()


def test_an_interrupted_run_keeps_its_checkpoints_for_resume(tiny_teacher, small_splits, cfg, tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = trainer.Checkpoints.save

    def save(self, state):
        real(self, state)
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer.Checkpoints, "save", save)
    with pytest.raises(KeyboardInterrupt):
        distill(tiny_teacher, small_splits, cfg.replace(checkpoint_dir=None))
    assert list((tmp_path / RUNS_DIR).rglob("last.pt"))


def test_an_unusable_teacher_output_cache_is_one_line(tmp_path):
    with pytest.raises(CompressError, match=r"cannot use the teacher-output cache /proc/x .*COMPRESS_CACHE"):
        cache.get_or_compute(Path("/proc/x"), "k", lambda: pytest.fail("computed before the folder was checked"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CompressError, match="--no-teacher-cache"):
        cache.get_or_compute(blocker / "sub", "k", dict)


def test_an_unusable_compress_cache_is_one_line(monkeypatch, tmp_path):
    from compressor import demo

    monkeypatch.setenv("COMPRESS_CACHE", "/proc/x")
    monkeypatch.setattr(demo, "train_teacher", lambda **k: pytest.fail("trained before the folder was checked"))
    with pytest.raises(CompressError, match=r"^cannot use the cache folder /proc/x \(.*\); set COMPRESS_CACHE"):
        demo.teacher_path()
    with pytest.raises(CompressError, match="COMPRESS_CACHE"):
        demo.teacher_path_cached()
    r = run_cli("demo", "--out", "o", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == \
        "error: cannot use the cache folder /proc/x (No such file or directory); set COMPRESS_CACHE to a writable " \
        "folder\n"
    assert not list(tmp_path.iterdir())
