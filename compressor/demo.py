"""The built-in default: a small CNN teacher trained on scikit-learn's bundled digits, cached on disk."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import torch

from . import data as datasets
from .core.errors import CompressError
from .distill.trainer import fit
from .evaluate import accuracy
from .loading import LoadedModel, from_module, load_model, save_torchscript
from .models import DigitsCNN

VERSION = "digits-cnn-w32-v2"  # bump when the recipe or the trainer changes, so that caches are rebuilt
EPOCHS = 30


def cache_dir() -> Path:
    root = os.environ.get("COMPRESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edge-compress")
    return Path(root)


def cache_error(folder: Path, e: OSError) -> CompressError:
    """One line for a cache folder that cannot be made, read or written (COMPRESS_CACHE=/proc/x, a full disk)."""
    return CompressError(f"cannot use the cache folder {folder} ({e.strerror or type(e).__name__}); set "
                         "COMPRESS_CACHE to a writable folder")


def train_teacher(seed: int = 0, epochs: int = EPOCHS, progress=None) -> tuple[torch.nn.Module, float]:
    """Train the demo teacher on the training split; returns it and its held-out test accuracy."""
    splits = datasets.split(datasets.load_digits(), seed=0)
    model = DigitsCNN(width=32)
    fit(model, splits.train, splits.val, epochs=epochs, seed=seed, on_epoch=progress)
    return model, accuracy(model, splits.test)


def teacher_path(progress=None) -> Path:
    """Path of the cached demo teacher (TorchScript), training it on first use."""
    path = cache_dir() / f"{VERSION}.pt"
    if teacher_path_cached():  # also checks the folder: an unusable one must not cost the training first
        return path
    model, _ = train_teacher(progress=progress)
    # write then rename: a concurrent or killed run never sees half a file
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        save_torchscript(model, Path(tmp), DigitsCNN.input_shape)
        os.replace(tmp, path)
    except OSError as e:
        raise cache_error(path.parent, e) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def teacher(progress=None) -> LoadedModel:
    """The demo teacher as a plain nn.Module (prunable and trainable, unlike the TorchScript file)."""
    cached = load_model(teacher_path(progress))
    model = DigitsCNN(width=32)
    model.load_state_dict(cached.module.state_dict())
    loaded = from_module(model.eval(), name=f"built-in teacher ({VERSION})")
    loaded.sha256 = cached.sha256
    return loaded


def save_as(model: torch.nn.Module, path: Path, fmt: str) -> None:
    """Write the teacher in one of the formats the loader accepts (for users trying each, and tests)."""
    shape = DigitsCNN.input_shape
    if fmt == "torchscript":
        save_torchscript(model, path, shape)
    elif fmt == "pt2":
        batch = torch.export.Dim("batch", min=1, max=4096)
        ep = torch.export.export(model.eval(), (torch.zeros(2, *shape[1:]),), dynamic_shapes=({0: batch},))
        torch.export.save(ep, str(path))
    elif fmt == "state_dict":
        torch.save(model.state_dict(), path)
    elif fmt == "pickle":
        torch.save(model, path)
    else:
        raise ValueError(fmt)


FORMATS = ("torchscript", "pt2", "state_dict", "pickle")


def teacher_path_cached() -> bool:
    """Whether the teacher is cached. When it is not, its folder must be usable: checked here, before
    the caller shows a progress bar for the training, so that the error is the only line printed."""
    path = cache_dir() / f"{VERSION}.pt"
    try:
        if path.is_file():
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as e:
        raise cache_error(path.parent, e) from None
    return False
