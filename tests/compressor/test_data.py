import io
import zipfile

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
    with pytest.raises(CompressError, match="no images and no class folders"):
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


# issue 13: sizes a file claims, dtypes, hidden folders, class names, tiny data


def test_a_huge_label_is_refused_before_anything_is_built(tmp_path):
    import tracemalloc

    p = tmp_path / "d.npz"
    y = np.zeros(40, np.int64)
    for label in (20_000_000, 2**40):
        y[0] = label
        np.savez(p, x=np.zeros((40, 1, 8, 8), np.float32), y=y)
        tracemalloc.start()
        try:
            with pytest.raises(CompressError, match=f"labels go up to {label} but the model has 10 outputs"):
                data.load(str(p), num_classes=10)
            with pytest.raises(CompressError, match=f"labels go up to {label}; labels are class indices"):
                data.load(str(p))  # no model to compare with (unlabelled extra data): a cap on classes
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 20 << 20  # was 1.7 GB for 2e7 (a class name per possible label), a MemoryError for 2**40


def _npz_claiming(path, name, shape, dtype="<f4"):
    """An .npz whose member's header claims `shape`, followed by a few bytes only."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}.npy", header.getvalue() + b"\0" * 64)
        if name != "x":
            z.writestr("x.npy", _npy(np.zeros((40, 4), np.float32)))


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_array_sizes_are_checked_from_the_header(tmp_path):
    p = tmp_path / "d.npz"
    _npz_claiming(p, "x", (10**12, 64))
    with pytest.raises(CompressError, match="GiB to load"):
        data.load(str(p))
    _npz_claiming(p, "y", (10**12,), "<i8")
    with pytest.raises(CompressError, match="one per row of x"):
        data.load(str(p))


def test_uint8_images_are_scaled_and_recorded(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.full((40, 1, 8, 8), 255, np.uint8), y=np.zeros(40, np.int64))
    d = data.load(str(p))
    assert d.x.dtype == np.float32 and d.x.max() == 1.0 and d.scale.startswith("uint8 / 255")
    assert data.split(d).test.scale == d.scale
    ints = data.load(str(p), input_dtype="int64")  # a model of token ids takes them as they are
    assert ints.x.dtype == np.int64 and ints.x.max() == 255


@pytest.mark.parametrize("x, msg", [(np.zeros((40, 4), np.complex64), r"complex64 \(complex numbers\)"),
                                    (np.zeros((40, 4), bool), r"bool \(booleans\)"),
                                    (np.array([["a"] * 4] * 40), "text"),
                                    (np.full((40, 4), np.nan, np.float32), "NaN or Inf")])
def test_inputs_that_are_not_real_numbers(tmp_path, x, msg):
    p = tmp_path / "d.npz"
    np.savez(p, x=x)
    with pytest.raises(CompressError, match=msg):
        data.load(str(p))


def test_an_integer_model_refuses_float_data(tmp_path):
    with pytest.raises(CompressError, match="takes int64 inputs .* holds float32 values"):
        data.load("digits", input_dtype="int64")


def test_hidden_entries_are_not_classes_or_images(tmp_path):
    _write_images(tmp_path, [("cat", (8, 8)), ("dog", (8, 8))])
    for hidden in (".ipynb_checkpoints", ".git"):
        _write_images(tmp_path, [(hidden, (8, 8))])
    (tmp_path / "cat" / "._0.png").write_bytes(b"macOS resource fork, not an image")
    d = data.load(str(tmp_path), channels=1)
    assert d.classes == ("cat", "dog") and list(d.y) == [0, 1]
    assert data.sample_shape(str(tmp_path), channels=1) == (1, -1, -1)  # any size: images are resized to the model's


def test_class_folders_follow_the_models_class_names(tmp_path):
    _write_images(tmp_path, [("cat", (8, 8)), ("dog", (8, 8))])
    d = data.load(str(tmp_path), channels=1, classes=("dog", "bird", "cat"))
    assert d.classes == ("dog", "bird", "cat") and list(d.y) == [2, 0]  # the model's indices, not sorted order
    with pytest.raises(CompressError, match="class folders cat in .* are not among the model's classes"):
        data.load(str(tmp_path), classes=("dog", "bird"))
    with pytest.raises(CompressError, match=r"has 2 class folders \(cat, dog\) but the model has 1 outputs"):
        data.load(str(tmp_path), num_classes=1)


def test_tiny_data_is_an_error_and_small_data_a_warning():
    d = data.load("digits")
    for n in (1, 3, data.MIN_SAMPLES - 1):
        tiny = data.Dataset(d.x[:n], d.y[:n], d.classes, "tiny")
        with pytest.raises(CompressError, match=f"has {n} samples?; at least {data.MIN_SAMPLES} are needed"):
            data.split(tiny)  # was sklearn's ValueError for 1 sample, a 1/1/1 split for 3
    small = data.Dataset(d.x[:100], d.y[:100], d.classes, "small")
    assert "off by up to ±22 points" in data.check_size(small)
    assert data.check_size(d) is None


def test_sample_shape_is_read_cheaply(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((5, 3, 4, 4), np.float32))
    assert data.sample_shape(str(p)) == (3, 4, 4) and data.sample_shape("digits") == (1, 8, 8)
    assert data.sample_shape(str(tmp_path / "missing.npz")) is None
    with pytest.raises(CompressError, match=r"data samples have shape \(1, 8, 8\) but the model takes"):
        data.check_shape(data.sample_shape("digits"), (1, 3, 8192, 8192))


def test_an_unlabelled_folder_of_images(tmp_path):
    for i in range(3):
        Image.fromarray((np.random.rand(16, 20, 3) * 255).astype(np.uint8)).save(tmp_path / f"{i}.jpg")
    d = data.load(str(tmp_path), channels=3, input_shape=(1, 3, 8, 8))
    assert d.x.shape == (3, 3, 8, 8) and d.y is None and d.classes == ()
    assert data.sample_shape(str(tmp_path), 3) == (3, -1, -1)
    (tmp_path / "cat").mkdir()
    with pytest.raises(CompressError, match="holds both images and folders"):
        data.load(str(tmp_path))
