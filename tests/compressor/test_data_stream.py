"""Image folders past data.IN_MEMORY_BYTES stream into a disk-backed array (issue 12); the threshold is lowered
here so that a few dozen small images take that path."""
import errno
import gc
import os
import tempfile
import warnings

import numpy as np
import pytest
from PIL import Image

from compressor import data, runs
from compressor.core.errors import CompressError
from compressor.preprocess import parse

SIZE = (16, 16)
PER_CLASS = 15  # 45 images of 3x16x16 float32: 138 KB


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c in ("ant", "bee", "cat"):
        (root / c).mkdir(parents=True)
        for i in range(PER_CLASS):  # not the model's size: resized and centre-cropped
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / c / f"{i:02}.png")
    return root


@pytest.fixture
def stream(monkeypatch):
    """Every folder above 20 KB streams, in batches of 7 images."""
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", 20_000)
    monkeypatch.setattr(data, "STREAM_BATCH", 7)


def _load(folder):
    return data.load(str(folder), 3, input_shape=(1, 3, *SIZE), preprocess=parse("imagenet"))


def test_a_big_folder_loads_as_a_read_only_memmap_equal_to_the_in_memory_one(folder, monkeypatch):
    expected = _load(folder)
    assert not isinstance(expected.x, np.memmap)
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", 20_000)
    monkeypatch.setattr(data, "STREAM_BATCH", 7)
    d = _load(folder)
    assert isinstance(d.x, np.memmap) and not d.x.flags.writeable
    assert d.x.shape == (3 * PER_CLASS, 3, *SIZE) and d.x.dtype == np.float32
    assert np.array_equal(d.x, expected.x)  # exactly: the same decoding, batch by batch
    assert d.classes == ("ant", "bee", "cat") and list(d.y) == [0] * PER_CLASS + [1] * PER_CLASS + [2] * PER_CLASS
    assert (d.source, d.scale) == (expected.source, expected.scale)


def test_splits_of_a_memmap_are_memmaps_equal_to_the_in_memory_splits(folder, monkeypatch):
    expected = data.split(_load(folder), seed=3)
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", 20_000)
    monkeypatch.setattr(data, "STREAM_BATCH", 7)
    got = data.split(_load(folder), seed=3)
    for name in ("train", "val", "test"):
        a, b = getattr(got, name), getattr(expected, name)
        assert isinstance(a.x, np.memmap) and a.x.flags.writeable  # writable: torch.from_numpy without a warning
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and a.classes == b.classes
    assert (len(got.train), len(got.val), len(got.test)) == (len(expected.train), len(expected.val),
                                                             len(expected.test))
    assert len(got.train) + len(got.val) + len(got.test) == 3 * PER_CLASS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import torch

        assert torch.from_numpy(np.ascontiguousarray(got.train.x)).shape == got.train.x.shape


def test_the_split_never_indexes_the_whole_memmap_at_once(folder, stream, monkeypatch):
    d = _load(folder)
    taken = []
    gather = data._gather

    def spy(x, order):
        for rows in gather(x, order):
            taken.append(len(rows))
            yield rows

    monkeypatch.setattr(data, "_gather", spy)
    data.split(d)
    assert sum(taken) == len(d) and max(taken) == 7


def test_a_memmap_made_elsewhere_is_split_without_indexing_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "STREAM_BATCH", 7)
    x = np.random.default_rng(1).random((40, 2, 3), dtype=np.float32)
    x.tofile(tmp_path / "x.f32")
    mine = data.Dataset(np.memmap(tmp_path / "x.f32", np.float32, "r", shape=x.shape), np.arange(40) % 2, ("a", "b"),
                        "x.f32")
    got, expected = data.split(mine), data.split(data.Dataset(x, mine.y, mine.classes, "x"))
    for name in ("train", "val", "test"):
        assert isinstance(getattr(got, name).x, np.memmap)
        assert np.array_equal(getattr(got, name).x, getattr(expected, name).x)


def test_the_temporary_files_are_in_the_run_folder_and_gone_after_a_run(folder, stream, monkeypatch):
    made = []
    mkstemp = tempfile.mkstemp

    def spy(*args, **kwargs):
        made.append(mkstemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    with runs.run_folder() as run:
        splits = data.split(_load(folder))
        assert [os.path.dirname(name) for _, name in made] == [str(run)] * 2  # the images, then the splits
        assert not any(os.path.exists(name) for _, name in made)  # unlinked once mapped, still readable:
        assert float(np.abs(splits.train.x).sum()) > 0
        assert _open_image_files()
        del splits
        gc.collect()
        assert not _open_image_files()  # their descriptors (and so their disk space) go with the arrays
    assert not run.exists()


def _open_image_files():
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return [link for link in links if "/images-" in link]


def test_the_temporary_file_is_gone_after_an_error(folder, stream, monkeypatch):
    (folder / "cat" / "99.png").write_bytes(b"not a png")  # the last image, after several batches were written
    monkeypatch.setattr(tempfile, "tempdir", str(folder.parent / "tmp"))
    os.mkdir(tempfile.tempdir)
    with pytest.raises(CompressError, match="cannot read image .*99.png"):
        _load(folder)
    assert os.listdir(tempfile.tempdir) == []


def test_the_temporary_file_is_gone_after_a_sigterm(folder, stream, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(folder.parent / "tmp"))
    os.mkdir(tempfile.tempdir)
    calls = []
    image_array = data.image_array

    def terminated_midway(*args):
        calls.append(1)
        if len(calls) == 20:
            raise runs.Terminated  # what SIGTERM raises inside a run (compressor/runs.py)
        return image_array(*args)

    monkeypatch.setattr(data, "image_array", terminated_midway)
    with pytest.raises(runs.Terminated):
        _load(folder)
    assert os.listdir(tempfile.tempdir) == []


def test_not_enough_disk_space_is_one_line(folder, stream, monkeypatch):
    free = data.shutil.disk_usage(tempfile.gettempdir())._replace(free=100_000)
    monkeypatch.setattr(data.shutil, "disk_usage", lambda path: free)
    with pytest.raises(CompressError, match=r"45 decoded images need 0\.3 MiB of temporary disk .* TMPDIR") as e:
        _load(folder)
    assert "\n" not in str(e.value)


def test_a_disk_filling_up_while_writing_is_one_line(folder, stream, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(folder.parent / "tmp"))
    os.mkdir(tempfile.tempdir)
    fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(fdopen(fd, mode)))
    with pytest.raises(CompressError, match="the disk filled up .* set TMPDIR") as e:
        _load(folder)
    assert "\n" not in str(e.value) and os.listdir(tempfile.tempdir) == []


def test_nothing_is_printed_on_stdout(folder, stream, capsys):
    _load(folder)
    assert capsys.readouterr().out == ""  # the progress bar is on stderr: stdout may carry --json
