import math

import pytest
import torch
import torch.nn.functional as F

from compressor.distill import losses


@pytest.fixture()
def logits():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 10, generator=g) * 3, torch.randn(6, 10, generator=g) * 3


def test_kd_is_zero_for_identical_outputs_and_positive_otherwise(logits):
    s, t = logits
    assert losses.kd_loss(t, losses.soft_targets([t], 4.0), 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.kd_loss(s, losses.soft_targets([t], 4.0), 4.0).item() > 0


def test_kd_is_kl_times_t_squared(logits):
    s, t = logits
    T = 3.0
    p = F.softmax(t / T, 1)
    kl = (p * (p.log() - F.log_softmax(s / T, 1))).sum(1).mean()
    assert losses.kd_loss(s, losses.soft_targets([t], T), T).item() == pytest.approx(kl.item() * T * T, rel=1e-5)


def test_dkd_decomposes_kd(logits):
    """KD = TCKD + (1 - p_target) * NCKD per sample (Zhao et al. 2022, eq. 7)."""
    s, t = logits
    T, y = 2.0, torch.tensor([3])
    target = losses.soft_targets([t[:1]], T)
    non_target_mass = 1 - target.exp()[0, 3].item()
    kd = losses.kd_loss(s[:1], target, T)
    dkd = losses.dkd_loss(s[:1], target, y, T, alpha=1.0, beta=non_target_mass)
    assert dkd.item() == pytest.approx(kd.item(), rel=1e-4)
    assert losses.dkd_loss(t[:1], target, y, T).item() == pytest.approx(0.0, abs=1e-4)


def test_dkd_weights_terms_separately(logits):
    s, t = logits
    y = t.argmax(1)
    target = losses.soft_targets([t], 4.0)
    tckd = losses.dkd_loss(s, target, y, 4.0, alpha=1.0, beta=0.0)
    nckd = losses.dkd_loss(s, target, y, 4.0, alpha=0.0, beta=1.0)
    both = losses.dkd_loss(s, target, y, 4.0, alpha=2.0, beta=3.0)
    assert both.item() == pytest.approx(2 * tckd.item() + 3 * nckd.item(), rel=1e-5)


def test_ensemble_means(logits):
    a, b = logits
    arith = losses.soft_targets([a, b], 1.0, "arithmetic").exp()
    assert torch.allclose(arith, (F.softmax(a, 1) + F.softmax(b, 1)) / 2, atol=1e-6)
    geo = losses.soft_targets([a, b], 1.0, "geometric").exp()
    expected = torch.sqrt(F.softmax(a, 1) * F.softmax(b, 1))
    assert torch.allclose(geo, expected / expected.sum(1, keepdim=True), atol=1e-6)
    assert torch.allclose(losses.soft_targets([a], 2.0, "geometric"), F.log_softmax(a / 2, 1), atol=1e-6)
    with pytest.raises(ValueError):
        losses.soft_targets([a], 1.0, "median")


def test_hard_loss_ignores_unlabelled_rows(logits):
    s, _ = logits
    y = torch.tensor([1, -1, 2, -1, 0, 5])
    keep = y >= 0
    assert losses.hard_loss(s, y).item() == pytest.approx(F.cross_entropy(s[keep], y[keep]).item())
    none = losses.hard_loss(s.requires_grad_(), torch.full((6,), -1))
    assert none.item() == 0.0 and none.requires_grad


def test_hint_loss_pools_to_the_smaller_map():
    t = torch.ones(2, 4, 4, 4)
    assert losses.hint_loss(torch.ones(2, 4, 8, 8), t).item() == 0.0
    assert losses.hint_loss(torch.zeros(2, 4, 4, 4), t).item() == 1.0


def test_contrastive_loss_prefers_the_positive():
    g = torch.Generator().manual_seed(1)
    a = F.normalize(torch.randn(8, 16, generator=g), dim=1)
    negs = F.normalize(torch.randn(8, 32, 16, generator=g), dim=1)
    good = losses.contrastive_loss(a, a, negs, 0.1)
    bad = losses.contrastive_loss(a, -a, negs, 0.1)
    assert good.item() < 0.1 < bad.item()
    assert good.item() >= 0 and math.isfinite(bad.item())
