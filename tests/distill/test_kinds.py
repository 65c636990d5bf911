"""Distillation follows the teacher's output kind: losses, validation metric, the chance-level check."""
import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn

from compressor.core.errors import CompressError
from compressor.distill import losses, quality
from compressor.distill.config import DistillConfig
from compressor.distill.engine import distill
from compressor.distill.methods import check_kind
from compressor.loading import from_module


def test_dense_kd_is_per_pixel_kd():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4)
    logp = losses.teacher_targets([t], "dense", 2.0)
    assert torch.allclose(logp.exp().sum(1), torch.ones(2, 3, 4))  # a distribution over channels at each pixel
    assert losses.dense_kd_loss(t, logp, 2.0).abs() < 1e-5
    # one pixel per sample is plain KD
    one = losses.dense_kd_loss(s[:, :, :1, :1], logp[:, :, :1, :1], 2.0)
    assert torch.allclose(one, losses.kd_loss(s[:, :, 0, 0], logp[:, :, 0, 0], 2.0), atol=1e-5)


def test_embedding_and_regression_losses():
    e = torch.randn(4, 8)
    assert losses.cosine_loss(3 * e, e).abs() < 1e-6  # direction only
    assert torch.allclose(losses.cosine_loss(-e, e), torch.tensor(2.0))
    assert torch.equal(losses.teacher_targets([e, 3 * e], "embedding", 4.0), 2 * e)  # values, not probabilities
    assert losses.mse_loss(e + 1, e) == pytest.approx(1.0)
    assert losses.smooth_l1_loss(e + 3, e) == pytest.approx(2.5)  # linear beyond beta = 1


def test_method_kind_pairs():
    check_kind(("kd", "hint"), "dense")
    check_kind(("cosine", "mse"), "embedding")
    with pytest.raises(CompressError, match="method 'dkd' does not distil a embedding output; for embedding outputs "
                                            "choose from: kd, hint, crd, cosine, mse, smooth_l1"):
        check_kind(("kd", "dkd"), "embedding")
    with pytest.raises(CompressError, match="for regression outputs choose from: kd, hint, mse, smooth_l1"):
        check_kind(("cosine",), "regression")


def test_chance_levels_and_check():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 10))
    assert quality.chance("logits", t) == pytest.approx(0.15)
    assert quality.chance("logits", rng.normal(size=(5, 100))) == 0.05
    good = quality.check("logits", t + 0.01, t, t)
    assert good["value"] == 1.0 and not good["collapsed"]
    flat = quality.check("logits", np.tile(t[:1], (50, 1)), t, t)  # one answer for every input
    assert flat["collapsed"] and "at chance level" in quality.warning(flat)
    tied = rng.normal(scale=1e-3, size=(50, 1000))  # an untrained teacher: classes nearly tied
    c = quality.check("logits", tied[::-1].copy(), quality.reference([tied], "logits"), tied)
    assert c["teacher_nearly_uniform"] and "its top-1 is noise: distil a trained teacher" in quality.warning(c)
    emb = rng.normal(size=(50, 8)) + 3  # embeddings that share a direction: a constant is already close
    const = np.tile(emb.mean(0, keepdims=True), (50, 1))
    c = quality.check("embedding", const, emb, emb)
    assert c["collapsed"] and c["value"] == pytest.approx(c["chance_level"]) and c["chance_level"] > 0.8
    assert not quality.check("embedding", emb, emb, emb)["collapsed"]
    r = quality.check("regression", const, emb, emb)
    assert r["collapsed"] and r["metric"] == "mean squared error"
    assert quality.score("regression", emb + 0.1, np.zeros(0), emb)[0] == pytest.approx(-0.01)


class Net(nn.Module):
    """A small conv net on 8x8 digits; its output kind is declared by `task`."""

    def __init__(self, task: str, width: int = 8) -> None:
        super().__init__()
        self.task = task
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        if task == "dense":
            self.dense = nn.Conv2d(width, 4, 1)  # 4 classes per pixel
        else:
            self.head = nn.Linear(width * 64, 6 if task == "embedding" else 2)

    def forward(self, x):
        f = self.features(x)
        return self.dense(f) if self.task == "dense" else self.head(f.flatten(1))


@pytest.mark.parametrize("kind, metric", [("embedding", "mean cosine"), ("regression", "mean squared error"),
                                          ("dense", "pixel agreement")])
def test_each_kind_distils_against_the_teacher(kind, metric, small_splits, tmp_path):
    torch.manual_seed(0)
    teacher = from_module(Net(kind).eval(), input_shape=(1, 1, 8, 8), name=kind)
    assert teacher.task == kind
    cfg = DistillConfig(epochs=3, ratio=0.5, cache_dir=str(tmp_path / "c"), checkpoint_dir=str(tmp_path / "r"))
    out = distill(teacher, small_splits, cfg, console=Console(stderr=True, quiet=True))
    assert out.kind == kind and out.check["metric"] == metric and not out.check["collapsed"]
    hist = out.stages[0]["history"]
    if kind == "regression":
        assert all(h["val"] <= 0 for h in hist) and out.check["value"] < out.check["chance_level"]
    else:
        assert 0 < out.stages[0]["val_score"] <= 1 and out.check["value"] > out.check["chance_level"]


def test_dkd_on_an_embedding_fails_before_training(small_splits, tmp_path):
    teacher = from_module(Net("embedding").eval(), input_shape=(1, 1, 8, 8), name="e")
    with pytest.raises(CompressError, match="method 'dkd' does not distil a embedding output"):
        distill(teacher, small_splits, DistillConfig(methods=("dkd",), checkpoint_dir=str(tmp_path / "r")))


def test_a_collapsed_student_is_reported(tiny_teacher, small_splits, tmp_path):
    """A random student that cannot move (lr ~ 0) stays at chance: a warning line and the manifest's figures."""
    console = Console(stderr=True, record=True, width=400)
    cfg = DistillConfig(epochs=1, lr=1e-12, student_init="random", ratio=0.25, cache_dir=str(tmp_path / "c"),
                        checkpoint_dir=str(tmp_path / "r"))
    torch.manual_seed(3)
    out = distill(tiny_teacher, small_splits, cfg, console=console)
    assert out.check["collapsed"] and out.check["value"] <= 0.15
    text = console.export_text()
    assert "warning: the student is at chance level: its top-1 agreement with the teacher" in text
