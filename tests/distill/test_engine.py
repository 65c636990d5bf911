import numpy as np
import pytest
import torch

from compressor import data as datasets
from compressor.core.errors import CompressError
from compressor.distill import targets
from compressor.distill.engine import distill
from compressor.distill.students import count_params
from compressor.evaluate import accuracy


def run(teacher, splits, cfg, **kw):
    return distill(teacher, splits, cfg.replace(**kw))


@pytest.mark.parametrize("methods, extra", [
    (("labels",), {}),
    (("kd",), {}),
    (("dkd",), {}),
    (("kd", "hint"), {"hints": ("features.3:features.3", "head.2:head.2")}),
    (("kd", "crd"), {"crd_negatives": 32}),
    (("kd", "dkd"), {"weights": (1.0, 0.5)}),
])
def test_each_method_trains_a_smaller_student(tiny_teacher, small_splits, cfg, methods, extra):
    out = run(tiny_teacher, small_splits, cfg, methods=methods, **extra)
    st = out.stages[-1]
    assert st["parameters"] <= 0.5 * count_params(tiny_teacher.module)
    assert st["epochs_run"] == 2 and 0 <= st["best_epoch"] < 2
    assert accuracy(out.student, small_splits.val) > 0.3
    assert not out.student.training


def test_teacher_outputs_are_cached_once(tiny_teacher, small_splits, cfg, monkeypatch):
    calls = []
    real = targets.outputs
    monkeypatch.setattr(targets, "outputs", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = run(tiny_teacher, small_splits, cfg)
    b = run(tiny_teacher, small_splits, cfg, checkpoint_dir=cfg.checkpoint_dir + "2")
    assert len(calls) == 1 and a.cache_keys == b.cache_keys and len(a.cache_keys) == 1
    # the online teacher gives the same training signal (up to float rounding)
    c = run(tiny_teacher, small_splits, cfg, cache=False, checkpoint_dir=cfg.checkpoint_dir + "3")
    for k, v in a.student.state_dict().items():
        torch.testing.assert_close(v, c.student.state_dict()[k], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mean", ["arithmetic", "geometric"])
def test_ensemble_of_two_teachers(tiny_teacher, tiny_teacher2, small_splits, cfg, tmp_path, mean):
    f = tmp_path / "t2.pt"
    torch.save(tiny_teacher2.module, f)
    out = distill(tiny_teacher, small_splits, cfg.replace(teachers=(str(f),), ensemble_mean=mean), trust_model=True)
    assert len(out.teachers) == 2 and out.stages[0]["teachers"] == 2 and len(out.cache_keys) == 2


def test_teacher_assistant_chain(tiny_teacher, small_splits, cfg):
    out = run(tiny_teacher, small_splits, cfg, assistants=1, ratio=0.25, epochs=1)
    sizes = [s["parameters"] for s in out.stages]
    assert [s["name"] for s in out.stages] == ["assistant 1", "student"]
    assert count_params(tiny_teacher.module) > sizes[0] > sizes[1]
    assert sizes[1] <= 0.25 * count_params(tiny_teacher.module)


def test_unlabelled_data(tiny_teacher, small_splits, cfg, tmp_path):
    unl = datasets.Dataset(small_splits.train.x, None, (), "x")
    val = datasets.Dataset(small_splits.val.x, None, (), "x")
    no_labels = datasets.Splits(unl, val, small_splits.test)
    out = run(tiny_teacher, no_labels, cfg, methods=("kd",))
    assert 0 < out.stages[0]["val_score"] <= 1  # agreement with the teacher
    with pytest.raises(CompressError, match="'labels' needs labelled data"):
        run(tiny_teacher, no_labels, cfg, methods=("labels",))
    # labelled and unlabelled mixed: --unlabeled adds rows whose targets come from the teacher only
    f = tmp_path / "u.npz"
    np.savez(f, x=small_splits.test.x[:100])
    mixed = run(tiny_teacher, small_splits, cfg, methods=("kd", "dkd"), unlabeled=str(f),
                checkpoint_dir=cfg.checkpoint_dir + "m")
    assert mixed.stages[0]["epochs_run"] == 2


def test_hint_layer_error_lists_names(tiny_teacher, small_splits, cfg):
    with pytest.raises(CompressError, match="teacher has no layer 'conv1'; available layers: features, features.0"):
        run(tiny_teacher, small_splits, cfg, methods=("kd", "hint"), hints=("conv1:features.0",))


def test_auto_student_needs_a_module(teacher_files, small_splits, cfg):
    from compressor.loading import load_model

    t = load_model(teacher_files["torchscript"])
    with pytest.raises(CompressError, match="--student auto needs the teacher as a plain nn.Module"):
        run(t, small_splits, cfg)


def test_resume_without_a_checkpoint_says_so(tiny_teacher, small_splits, cfg, tmp_path):
    import io

    from rich.console import Console

    buf = io.StringIO()
    distill(tiny_teacher, small_splits, cfg.replace(epochs=1, resume=True,
                                                    checkpoint_dir=str(tmp_path / "nothing-here")),
            console=Console(file=buf, width=300))
    text = buf.getvalue()
    assert "note: --resume: no checkpoint in" in text and "nothing-here" in text and "from scratch" in text
    buf.truncate(0)
    buf.seek(0)
    distill(tiny_teacher, small_splits, cfg.replace(epochs=1, resume=False), console=Console(file=buf, width=300))
    assert "no checkpoint" not in buf.getvalue()
