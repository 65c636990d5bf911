"""The reference architectures written from their papers, and BatchNorm recalibration."""
from __future__ import annotations

import pytest
import torch

from compressor.architectures import MobileNetV2, ResNet18, build, recalibrate_bn, smooth_images


def params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_full_width_matches_the_papers_parameter_counts():
    assert params(MobileNetV2()) == 3_504_872  # 3.4 M in Sandler et al. (Table 4), torchvision's count
    assert params(ResNet18()) == 11_689_512  # 11.7 M, He et al.


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_tiny_widths_build_small_models_with_the_asked_classes(name):
    m = build(name, num_classes=7, width=0.125)
    assert not m.training and params(m) < 400_000
    with torch.no_grad():
        assert m(smooth_images(2, 32)).shape == (2, 7)


def test_mobilenet_keeps_inverted_residuals_and_linear_bottlenecks():
    m = MobileNetV2()  # at full width: tiny widths round channels up to 8, which adds a shortcut
    blocks = [b for b in m.modules() if b.__class__.__name__ == "InvertedResidual"]
    assert len(blocks) == 17 and sum(b.residual for b in blocks) == 10
    assert all(not isinstance(b.block[-1][-1], torch.nn.ReLU6) for b in blocks)  # projection: no activation


def test_smooth_images_are_deterministic_and_structured():
    a, b = smooth_images(4, 32, seed=3), smooth_images(4, 32, seed=3)
    assert torch.equal(a, b) and a.shape == (4, 3, 32, 32)
    assert abs(float(a.std()) - 1) < 1e-5
    neighbours = torch.corrcoef(torch.stack([a[..., :-1].flatten(), a[..., 1:].flatten()]))[0, 1]
    assert neighbours > 0.5  # neighbouring pixels correlate, unlike white noise


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_recalibrated_outputs_depend_on_the_input(name):
    torch.manual_seed(0)
    m = build(name, num_classes=10, width=0.25)
    x = smooth_images(64, 32, seed=1)
    bn = next(b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d))
    recalibrate_bn(m, x, batch_size=16)
    assert not m.training and bn.momentum == 0.1  # eval mode, momentum restored
    with torch.no_grad():
        first_conv = next(c for c in m.modules() if isinstance(c, torch.nn.Conv2d))(x)
        y = m(smooth_images(64, 32, seed=2))
    # the cumulative average over all batches is the statistics of all images
    torch.testing.assert_close(bn.running_mean, first_conv.mean((0, 2, 3)), atol=1e-4, rtol=1e-4)
    assert len(set(y.argmax(1).tolist())) >= 4  # not one class for every input
