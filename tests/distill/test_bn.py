"""Batch-norm statistics re-estimated after each epoch (issue 15: stale running averages, eval outputs 100x off)."""
import torch
from torch import nn

from compressor.distill.trainer import recalibrate_bn


def test_recalibrated_statistics_are_the_datas():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Dropout(0.5))
    with torch.no_grad():
        m[0].weight.mul_(50)  # weights grown since the running averages were taken
    x = torch.randn(64, 2, 4, 4)
    assert recalibrate_bn(m, x, 16)
    feats = m[0](x)
    assert torch.allclose(m[1].running_mean, feats.mean((0, 2, 3)), atol=1e-4)
    # the mean of per-batch unbiased variances: close to the whole set's
    assert torch.allclose(m[1].running_var, feats.var((0, 2, 3)), rtol=0.1)
    assert m[1].momentum == 0.1 and m.training and m[2].training  # restored as it was
    m.eval()
    with torch.no_grad():
        out = m(x)
    assert out.abs().max() < 10  # eval mode now normalises with the statistics of these weights


def test_models_without_batch_norm_and_short_batches():
    assert not recalibrate_bn(nn.Linear(2, 2), torch.randn(4, 2), 2)
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert recalibrate_bn(m, torch.randn(9, 3), 4)  # the last batch of one sample is skipped, not an error
