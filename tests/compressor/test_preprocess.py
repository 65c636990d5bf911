"""Image folders for models trained on normalised images of another size: resize, centre crop, normalise."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from compressor import data
from compressor.core.errors import CompressError
from compressor.preprocess import IMAGENET, Preprocess, image_array, parse


def test_parse_names_and_values():
    assert parse(None) == parse("none") == Preprocess()
    assert parse("imagenet").mean == IMAGENET[0] and parse("imagenet").std == IMAGENET[1]
    p = parse("mean=0.5,0.5,0.5,std=0.25,0.25,0.25")
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.25, 0.25, 0.25)
    for bad in ("mean=1,2", "mean=a,std=1", "colour=1", "mean=0.5,std=0"):
        with pytest.raises(CompressError, match="--preprocess"):
            parse(bad)


def test_resize_then_centre_crop_then_normalise():
    # a 40x60 image whose left half is black and right half white: the crop keeps the centre
    a = np.zeros((40, 60, 3), np.uint8)
    a[:, 30:] = 255
    x = image_array(Image.fromarray(a), (16, 16), parse("imagenet"))
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    raw = x * np.asarray(IMAGENET[1])[:, None, None] + np.asarray(IMAGENET[0])[:, None, None]
    assert raw[:, :, 0].max() < 0.05 and raw[:, :, -1].min() > 0.95  # black left, white right, centred
    assert np.allclose(raw[:, :, 8:].mean(), 1.0, atol=0.1)


def test_a_folder_is_sized_to_the_model_and_recorded(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i, size in enumerate([(50, 70), (64, 64)]):  # mixed sizes are fine once resized
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = data.load(str(tmp_path), channels=3, input_shape=(1, 3, 32, 32), preprocess=parse("imagenet"))
    assert d.x.shape == (4, 3, 32, 32) and list(d.y) == [0, 0, 1, 1]
    assert "resized and centre-cropped to 32x32" in d.scale and "imagenet" in d.scale
    assert abs(float(d.x.mean())) < 1.0  # normalised around 0, not 0..1
    data.check_shape(data.sample_shape(str(tmp_path), 3), (1, 3, 32, 32))  # any size fits: it is resized
    with pytest.raises(CompressError, match="data samples have shape"):
        data.check_shape(data.sample_shape(str(tmp_path), 3), (1, 1, 32, 32))
