import numpy as np
import pytest
from PIL import Image

from compressor import data
from compressor.core.errors import CompressError


def test_digits_are_real_images():
    d = data.load("digits")
    assert d.x.shape == (1797, 1, 8, 8) and d.x.dtype == np.float32
    assert 0 <= d.x.min() and d.x.max() <= 1 and set(np.unique(d.y)) == set(range(10))


def test_split_is_disjoint_and_deterministic():
    d = data.load("digits")
    a, b = data.split(d, seed=0), data.split(d, seed=0)
    assert np.array_equal(a.test.x, b.test.x)
    assert len(a.train) + len(a.val) + len(a.test) == len(d)


def _write_images(root, sizes):
    for i, (cls, size) in enumerate(sizes):
        (root / cls).mkdir(exist_ok=True)
        Image.fromarray((np.random.rand(*size) * 255).astype(np.uint8)).save(root / cls / f"{i}.png")


def test_folder_of_images(tmp_path):
    _write_images(tmp_path, [("cat", (8, 8)), ("cat", (8, 8)), ("dog", (8, 8))])
    d = data.load(str(tmp_path), channels=1)
    assert d.x.shape == (3, 1, 8, 8) and d.classes == ("cat", "dog") and list(d.y) == [0, 0, 1]


def test_folder_mixed_sizes(tmp_path):
    _write_images(tmp_path, [("a", (8, 8)), ("b", (9, 8))])
    with pytest.raises(CompressError, match="differ in size"):
        data.load(str(tmp_path))


def test_empty_folder(tmp_path):
    with pytest.raises(CompressError, match="no class folders"):
        data.load(str(tmp_path))
    (tmp_path / "a").mkdir()
    with pytest.raises(CompressError, match="no images"):
        data.load(str(tmp_path))


def test_unreadable_image(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(CompressError, match="cannot read image"):
        data.load(str(tmp_path))


def test_npz(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((4, 1, 8, 8), np.float32), y=np.array([0, 1, 2, 3]))
    d = data.load(str(p))
    assert d.x.shape == (4, 1, 8, 8) and list(d.y) == [0, 1, 2, 3]
    np.savez(p, x=np.zeros((4, 64), np.float32))
    assert data.load(str(p)).y is None  # unlabelled


@pytest.mark.parametrize("arrays, msg", [({"y": np.zeros(3)}, "no array 'x'"),
                                         ({"x": np.zeros((3, 2)), "y": np.array([0, 1])}, "one per row"),
                                         ({"x": np.zeros((2, 2)), "y": np.array([0, -1])}, ">= 0")])
def test_npz_errors(tmp_path, arrays, msg):
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    with pytest.raises(CompressError, match=msg):
        data.load(str(p))


def test_labels_out_of_range():
    d = data.load("digits")
    with pytest.raises(CompressError, match="labels go up to 9"):
        data.check_fits(d, (1, 1, 8, 8), num_classes=5)
    with pytest.raises(CompressError, match="model takes"):
        data.check_fits(d, (1, 3, 8, 8), num_classes=10)


def test_missing_data():
    with pytest.raises(CompressError, match="not found"):
        data.load("/nonexistent/place")
