"""compressor.distill.trainer.fit's augment option: it reaches the training loop, and bad names are refused."""
import pytest
import torch

from compressor import data as datasets
from compressor.core.errors import CompressError
from compressor.distill.trainer import fit
from compressor.models import DigitsMLP


def _fit(augment: str) -> dict[str, torch.Tensor]:
    d = datasets.load_digits()
    part = datasets.Dataset(d.x[:200], d.y[:200], d.classes, d.source)
    torch.manual_seed(0)
    return fit(DigitsMLP(hidden=16), part, part, epochs=1, seed=0, augment=augment).state_dict()


def test_fit_with_shift_augmentation_trains_on_other_inputs():
    plain, again, shifted = _fit("none"), _fit("none"), _fit("shift")
    assert all(torch.equal(plain[k], again[k]) for k in plain)  # same seed, same result
    assert not all(torch.equal(plain[k], shifted[k]) for k in plain)  # augmentation changed what it saw
    with pytest.raises(CompressError, match="shift"):
        _fit("rotate")
