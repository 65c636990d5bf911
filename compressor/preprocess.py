"""How image files become model inputs: resize, centre-crop to the model's input size, scale, normalise.

    --preprocess imagenet                    mean 0.485,0.456,0.406, std 0.229,0.224,0.225 (torchvision's)
    --preprocess mean=0.5,0.5,0.5,std=0.5,0.5,0.5
    --preprocess none                        pixels / 255 only (the default)
The resize follows the usual evaluation recipe: the shorter side to size / 0.875 (256 for 224), then the
centre crop; a folder whose images already have the model's size is left as it is. The manifest records it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .core.checks import check_number
from .core.errors import CompressError

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CROP_FRACTION = 0.875


@dataclass(frozen=True)
class Preprocess:
    name: str = "none"
    mean: tuple[float, ...] = ()  # per channel, after scaling to 0..1; empty: not normalised
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise CompressError(f"--preprocess {self.name}: give as many mean as std values (one per channel)")
        for v in self.mean:
            check_number("--preprocess mean", v, -10.0, 10.0)
        for v in self.std:
            check_number("--preprocess std", v, 1e-6, 100.0, low_open=True)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "resize": f"shorter side to size / {CROP_FRACTION}, centre crop",
                "scale": "pixels / 255"}

    def normalise(self, a: np.ndarray) -> np.ndarray:
        """(C, H, W) in 0..1 -> normalised per channel."""
        if not self.mean:
            return a
        if len(self.mean) != a.shape[0]:
            raise CompressError(f"--preprocess {self.name} has {len(self.mean)} channel values but the images have "
                                f"{a.shape[0]} channels; give one mean and std per channel")
        m = np.asarray(self.mean, np.float32)[:, None, None]
        s = np.asarray(self.std, np.float32)[:, None, None]
        return (a - m) / s


def parse(spec: str | None) -> Preprocess:
    """`imagenet`, `none`, or `mean=a,b,c,std=d,e,f`."""
    if spec is None or spec == "none":
        return Preprocess()
    if spec == "imagenet":
        return Preprocess("imagenet", *IMAGENET)
    values: dict[str, list[float]] = {"mean": [], "std": []}
    key = None
    for part in spec.split(","):
        k, eq, v = part.partition("=")
        if eq:
            key, part = k.strip(), v
        if key not in values:
            raise CompressError(f"--preprocess {spec!r}: use imagenet, none, or mean=a,b,c,std=d,e,f")
        try:
            values[key].append(float(part))
        except ValueError:
            raise CompressError(f"--preprocess {spec!r}: {part!r} is not a number") from None
    return Preprocess(spec, tuple(values["mean"]), tuple(values["std"]))


def image_array(im: Any, size: tuple[int, int] | None, pre: Preprocess) -> np.ndarray:
    """A PIL image (already in the model's colour mode) -> (C, H, W) float32: resized and centre-cropped to
    `size` (H, W) when it differs, scaled to 0..1, normalised."""
    from PIL import Image

    if size is not None and (im.height, im.width) != tuple(size):
        h, w = size
        scale = max(h, w) / CROP_FRACTION / min(im.height, im.width)
        rw, rh = max(w, round(im.width * scale)), max(h, round(im.height * scale))
        im = im.resize((rw, rh), Image.BILINEAR)
        left, top = (rw - w) // 2, (rh - h) // 2
        im = im.crop((left, top, left + w, top + h))
    a = np.asarray(im, dtype=np.float32) / 255.0
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return pre.normalise(a)
