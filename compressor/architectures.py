"""Standard architectures written from their papers, for tests and benchmarks (pure torch).

torchvision does not import beside the torch this project pins, so the two reference CNNs are
written here: MobileNetV2 (Sandler et al. 2018) and ResNet-18 (He et al. 2016), each with a width
multiplier (tiny widths keep tests fast) and `num_classes`. Untrained nets give outputs that barely
depend on their input, which makes parity and int8 agreement checks vacuous: `recalibrate_bn`
re-estimates BatchNorm statistics on given images, and `smooth_images` makes structured images
without a download.
"""
from __future__ import annotations

import torch
from torch import nn


def _divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never more than 10% below v (the paper's code)."""
    n = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return n + divisor if n < 0.9 * v else n


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU6):
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """Expand (1x1, ReLU6), depthwise 3x3 (ReLU6), project (1x1, linear bottleneck); identity shortcut
    when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = [_conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Table 2 of the paper); `width` scales every layer but the last conv when < 1."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))  # expansion t, channels c, repeats n, first stride s

    def __init__(self, num_classes: int = 1000, width: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        cin = _divisible(32 * width)
        last = _divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [_conv_bn(3, cin, 3, 2)]
        for t, c, n, s in self.SETTINGS:
            cout = _divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(_conv_bn(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; the shortcut is a 1x1 conv + BN when the shape changes (option B)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()  # one module each: some quantizers trace modules
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (Table 1 of the paper: 7x7 stem, max pool, 4 stages of 2 basic blocks); `width` scales
    the stage widths 64/128/256/512."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0) -> None:
        super().__init__()
        widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], widths[0]
        for i, c in enumerate(widths):
            blocks += [BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)]
            cin = c
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _init(model: nn.Module) -> None:
    # He initialisation for convs (both papers), small normal for the classifier
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


ARCHITECTURES = {"mobilenet_v2": MobileNetV2, "resnet18": ResNet18}


def build(name: str, num_classes: int = 1000, width: float = 1.0) -> nn.Module:
    """An architecture by name (`ARCHITECTURES`), in eval mode."""
    return ARCHITECTURES[name](num_classes=num_classes, width=width).eval()


def smooth_images(n: int, size: int = 224, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """`n` random but structured images (N, C, size, size), about zero mean and unit spread: noise at
    three scales, upsampled smoothly, so neighbouring pixels correlate as in photographs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, channels, size, size)
    for cells, weight in ((4, 1.0), (16, 0.5), (size, 0.15)):
        noise = torch.randn(n, channels, min(cells, size), min(cells, size), generator=g)
        x += weight * nn.functional.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)
    return x / x.std()


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, batch_size: int = 32, center_head: bool = True) -> nn.Module:
    """Re-estimate every BatchNorm's running mean and variance on `images` (a cumulative average over
    all of them: momentum=None); returns the model in eval mode.

    With `center_head`, the last Linear layer's bias is then set so that its outputs average zero over
    the images: an untrained head otherwise adds the same large offset (from the mean of post-ReLU
    features) to every input, and one class wins for all of them.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:  # only BN in train mode: dropout stays off
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for i in range(0, len(images), batch_size):
        model(images[i:i + batch_size])
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.eval()
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if center_head and heads and heads[-1].bias is not None:
        outs: list[torch.Tensor] = []
        hook = heads[-1].register_forward_hook(lambda _m, _i, out: outs.append(out))
        try:
            for i in range(0, len(images), batch_size):
                model(images[i:i + batch_size])
        finally:
            hook.remove()
        heads[-1].bias -= torch.cat(outs).mean(0)
    return model
