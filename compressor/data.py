"""Data sources: scikit-learn's bundled digits, a folder of images by class, or an .npz with x (and y).

Every source gives float32 inputs shaped like the model's input (batch first) and int64
labels (or none: unlabelled data, labelled by the teacher during distillation).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core.errors import CompressError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".pgm", ".ppm"}


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # (N, *input_shape[1:])
    y: np.ndarray | None  # (N,) int64, or None when unlabelled
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset


def load_digits() -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    return Dataset(x, d.target.astype(np.int64), tuple(str(c) for c in d.target_names), "digits")


def load_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f.files:
                raise CompressError(f"{path} has no array 'x' (found: {', '.join(f.files) or 'none'}); "
                                    "save inputs as x= (and labels as y=) with numpy.savez")
            x = f["x"]
            y = f["y"] if "y" in f.files else None
    except CompressError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy raises many kinds for a bad file
        raise CompressError(f"cannot read {path} as .npz ({type(e).__name__}); save it with numpy.savez") from None
    if not np.issubdtype(x.dtype, np.number) or x.ndim < 2 or len(x) == 0:
        raise CompressError(f"{path}: x must be a non-empty numeric array, batch first (got {x.dtype} {x.shape})")
    if y is not None:
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise CompressError(f"{path}: y must be integer labels, one per row of x (got {y.dtype} {y.shape})")
        if y.min() < 0:
            raise CompressError(f"{path}: labels must be >= 0 (found {int(y.min())})")
    classes = tuple(str(i) for i in range(int(y.max()) + 1)) if y is not None else ()
    x = x if np.issubdtype(x.dtype, np.integer) and x.dtype == np.int64 else x.astype(np.float32)
    return Dataset(x, None if y is None else y.astype(np.int64), classes, str(path))


def load_folder(path: Path, channels: int | None = None) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    class_dirs = sorted(p for p in path.iterdir() if p.is_dir())
    if not class_dirs:
        raise CompressError(f"{path} has no class folders; put images in {path}/<class>/*.png")
    mode = {1: "L", 3: "RGB", None: None}.get(channels, "RGB")
    xs, ys, size = [], [], None
    for label, d in enumerate(class_dirs):
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert(mode or ("L" if im.mode in ("L", "1", "P") else "RGB"))
                    a = np.asarray(im, dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError) as e:
                raise CompressError(f"cannot read image {f} ({e.__class__.__name__}); remove or replace it") from None
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            if size is None:
                size = a.shape
            elif a.shape != size:
                raise CompressError(f"images differ in size: {f} is {a.shape[1:]} but earlier ones are {size[1:]}; "
                                    "resize them all to one size")
            xs.append(a)
            ys.append(label)
    if not xs:
        raise CompressError(f"no images found under {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return Dataset(np.stack(xs), np.asarray(ys, np.int64), tuple(d.name for d in class_dirs), str(path))


def load(spec: str, channels: int | None = None) -> Dataset:
    """`digits`, a folder of images by class, or an .npz file."""
    if spec == "digits":
        return load_digits()
    p = Path(spec)
    if not p.exists():
        raise CompressError(f"data {spec!r} not found; give 'digits', a folder of images by class, or an .npz file")
    if p.is_dir():
        return load_folder(p, channels)
    if p.suffix == ".npz":
        return load_npz(p)
    raise CompressError(f"data {spec!r} is neither a folder nor an .npz file; give 'digits', a folder or an .npz")


def check_fits(data: Dataset, input_shape: tuple[int, ...], num_classes: int | None) -> None:
    """The data must match the model: sample shape, and labels within its outputs."""
    if tuple(data.x.shape[1:]) != tuple(input_shape[1:]):
        raise CompressError(f"data samples have shape {tuple(data.x.shape[1:])} but the model takes "
                            f"{tuple(input_shape[1:])}; pass matching data or --input-shape")
    if data.y is not None and num_classes is not None and int(data.y.max()) >= num_classes:
        raise CompressError(f"labels go up to {int(data.y.max())} but the model has {num_classes} outputs; "
                            "fix the labels or the model")


def split(data: Dataset, seed: int = 0, val: float = 0.15, test: float = 0.2) -> Splits:
    """Deterministic split, stratified when labelled."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data))
    strat = data.y if data.y is not None and np.bincount(data.y).min() >= 3 else None
    rest, te = train_test_split(idx, test_size=test, random_state=seed, stratify=strat)
    strat_rest = strat[rest] if strat is not None else None
    tr, va = train_test_split(rest, test_size=val / (1 - test), random_state=seed, stratify=strat_rest)

    def take(i: np.ndarray) -> Dataset:
        return Dataset(data.x[i], None if data.y is None else data.y[i], data.classes, data.source)

    return Splits(take(tr), take(va), take(te))
