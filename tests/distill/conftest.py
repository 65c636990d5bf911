"""Fixtures for the distillation tests: digits splits and a tiny teacher trained in a second or two."""
from __future__ import annotations

import pytest
import torch

from compressor import data as datasets
from compressor.distill.config import DistillConfig
from compressor.loading import from_module
from compressor.models import DigitsCNN


@pytest.fixture(scope="session")
def splits() -> datasets.Splits:
    return datasets.split(datasets.load_digits(), seed=0)


@pytest.fixture(scope="session")
def small_splits(splits) -> datasets.Splits:
    """A third of the training split: enough to learn, quick to train on."""
    tr = splits.train
    return datasets.Splits(datasets.Dataset(tr.x[:360], tr.y[:360], tr.classes, tr.source), splits.val, splits.test)


def _trained(width: int, seed: int, splits) -> torch.nn.Module:
    from compressor.distill.trainer import fit

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        return fit(DigitsCNN(width=width), splits.train, splits.val, epochs=3, seed=seed)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_teacher(splits):
    return from_module(_trained(8, 0, splits), name="tiny teacher")


@pytest.fixture(scope="session")
def tiny_teacher2(splits):
    return from_module(_trained(8, 1, splits), name="tiny teacher 2")


@pytest.fixture()
def cfg(tmp_path) -> DistillConfig:
    """Short runs, with the cache and checkpoints in the test's own folder."""
    return DistillConfig(epochs=2, batch_size=64, cache_dir=str(tmp_path / "cache"),
                         checkpoint_dir=str(tmp_path / "runs"), ratio=0.5)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread, and far faster when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
