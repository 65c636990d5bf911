"""Data sources: scikit-learn's bundled digits, a folder of images by class (or unlabelled), or an .npz with x (and y).

Every source gives inputs shaped like the model's input (batch first), float32 (or integers for a model
that takes them), and int64 labels (or none: unlabelled data, labelled by the teacher during distillation).
Sizes a file claims (array shapes, the largest label) are checked before anything is built from them.
"""
from __future__ import annotations

import contextlib
import errno
import math
import mmap
import os
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import text
from .core.errors import CompressError
from .preprocess import Preprocess, image_array

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".pgm", ".ppm"}
MIN_SAMPLES = 20  # fewer cannot be split into train / validation / test with more than a sample or two each
WARN_SAMPLES = 500  # fewer: a test split under 100 samples, whose accuracy is off by several points
RANDOM = "random"  # --data random: inputs of the model's shape and dtype, for an export-only run
RANDOM_SAMPLES = 512
MAX_CLASSES = 100_000  # labels are class indices; a larger one is a mistake (or a file claiming a huge size)
# An image folder whose decoded float32 inputs exceed this is streamed into a disk-backed array (10,000 images at
# 224 px are 6 GB); below it, it stays in memory. Tests lower it.
IN_MEMORY_BYTES = 256 << 20
STREAM_BATCH = 256  # images decoded (or rows copied) at a time while streaming ...
STREAM_BATCH_BYTES = 64 << 20  # ... and at most this many bytes of them: the memory a stream holds at once


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # (N, *input_shape[1:])
    y: np.ndarray | None  # (N,) int64, or None when unlabelled
    classes: tuple[str, ...]
    source: str
    scale: str = "as stored"  # how the stored values became inputs (recorded in the manifest)

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset


def physical_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its container's limit when lower."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def load_digits() -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    return Dataset(x, d.target.astype(np.int64), tuple(str(c) for c in d.target_names), "digits", "pixels / 16")


def _npy_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of each array in an .npz, from its header alone (the data is not read)."""
    headers = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if not name.endswith(".npy"):
                continue
            with z.open(name) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            headers[name[:-4]] = (tuple(shape), dtype)
    return headers


def _check_npz_header(path: Path, headers: dict) -> None:
    if "x" not in headers:
        raise CompressError(f"{path} has no array 'x' (found: {', '.join(headers) or 'none'}); "
                            "save inputs as x= (and labels as y=) with numpy.savez")
    shape, dtype = headers["x"]
    if dtype.kind not in "iuf" or len(shape) < 2 or shape[0] == 0:
        kind = {"c": " (complex numbers)", "b": " (booleans)", "U": " (text)", "S": " (bytes)"}.get(dtype.kind, "")
        raise CompressError(f"{path}: x holds {dtype}{kind} values of shape {shape}; it must be a non-empty array "
                            "of real numbers (float, or integers such as uint8 pixels), batch first")
    need = int(np.prod(shape, dtype=np.float64) * (dtype.itemsize + 4))  # as stored, plus the float32 copy
    if need > physical_memory() // 2:
        raise CompressError(f"{path}: x declares shape {shape} ({dtype}), {need / 2**30:.1f} GiB to load, more "
                            "than half this machine's memory; use fewer or smaller samples")
    if "y" in headers:
        y_shape, y_dtype = headers["y"]
        if y_shape != (shape[0],) or y_dtype.kind not in "iu":
            raise CompressError(f"{path}: y must be integer labels, one per row of x (got {y_dtype} {y_shape})")


def load_npz(path: Path, num_classes: int | None = None) -> Dataset:
    try:
        _check_npz_header(path, _npy_headers(path))
        with np.load(path, allow_pickle=False) as f:
            x = f["x"]
            y = f["y"] if "y" in f.files else None
    except CompressError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy and zipfile raise many kinds for a bad file
        raise CompressError(f"cannot read {path} as .npz ({type(e).__name__}); save it with numpy.savez") from None
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise CompressError(f"{path}: x holds NaN or Inf; clean the data")
    classes: tuple[str, ...] = ()
    if y is not None:
        if y.min() < 0:
            raise CompressError(f"{path}: labels must be >= 0 (found {int(y.min())})")
        top = int(y.max())
        if num_classes is not None and top >= num_classes:  # before any list is built from the file's number
            raise CompressError(f"labels go up to {top} but the model has {num_classes} outputs; "
                                "fix the labels or the model")
        if top >= MAX_CLASSES:
            raise CompressError(f"{path}: labels go up to {top}; labels are class indices 0..C-1 with C at most "
                                f"{MAX_CLASSES}: fix the labels")
        classes = tuple(str(i) for i in range(top + 1))
        y = y.astype(np.int64)
    return Dataset(x, y, classes, str(path))


def _visible(entries: list[Path]) -> list[Path]:
    """Without hidden entries (.ipynb_checkpoints, .git, macOS ._ files): they are never classes or samples."""
    return sorted(p for p in entries if not p.name.startswith("."))


def _class_dirs(path: Path) -> list[Path]:
    """The class folders; [] for an unlabelled folder (images directly inside, `_loose_images`)."""
    entries = _visible(list(path.iterdir()))
    dirs = [p for p in entries if p.is_dir()]
    if dirs and _loose_images(path):
        raise CompressError(f"{path} holds both images and folders; put every image in {path}/<class>/ (labelled) "
                            "or all directly in it (unlabelled)")
    if not dirs and not _loose_images(path):
        raise CompressError(f"{path} has no images and no class folders; put images in {path}/<class>/*.png, or "
                            f"directly in {path} when they have no labels")
    return dirs


def _loose_images(path: Path) -> list[Path]:
    return [f for f in _visible(list(path.iterdir())) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]


def _folder_labels(path: Path, names: list[str], classes: tuple[str, ...] | None,
                   num_classes: int | None) -> tuple[dict[str, int], tuple[str, ...]]:
    """Label of each class folder: the model's index of its name when the model names its classes."""
    if classes is not None:
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise CompressError(f"class folders {', '.join(unknown[:5])} in {path} are not among the model's "
                                f"classes ({', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''}); "
                                "rename or remove them")
        return {n: classes.index(n) for n in names}, classes
    if num_classes is not None and len(names) > num_classes:
        raise CompressError(f"{path} has {len(names)} class folders ({', '.join(names[:12])}"
                            f"{' ...' if len(names) > 12 else ''}) but the model has {num_classes} outputs; "
                            "remove the extra folders")
    return {n: i for i, n in enumerate(names)}, tuple(names)


def _image_mode(channels: int | None, image_mode: str) -> str:
    mode = {1: "L", 3: "RGB", None: None}.get(channels, "RGB")
    return mode or ("L" if image_mode in ("L", "1", "P") else "RGB")


def _image_files(class_dirs: list[Path], labels: dict[str, int]) -> tuple[list[Path], np.ndarray]:
    """The image files of every class folder, in order, and their labels."""
    files, ys = [], []
    for d in class_dirs:
        for f in _visible(list(d.iterdir())):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                ys.append(labels[d.name])
    return files, np.asarray(ys, np.int64)


def _decoder(channels: int | None, size: tuple[int, int] | None,
             pre: Preprocess) -> Callable[[Path, tuple[int, ...] | None], np.ndarray]:
    """A function: image file -> (C, H, W) float32 model input, checked against the first image's shape."""
    from PIL import Image, UnidentifiedImageError

    def decode(f: Path, first: tuple[int, ...] | None) -> np.ndarray:
        try:
            with Image.open(f) as im:
                a = image_array(im.convert(_image_mode(channels, im.mode)), size, pre)
        except (UnidentifiedImageError, OSError) as e:
            raise CompressError(f"cannot read image {f} ({e.__class__.__name__}); remove or replace it") from None
        if first is not None and a.shape != first:
            raise CompressError(f"images differ in size: {f} is {a.shape[1:]} but earlier ones are {first[1:]}; "
                                "resize them all to one size, or give the model's size (--input-shape)")
        return a

    return decode


def load_folder(path: Path, channels: int | None = None, classes: tuple[str, ...] | None = None,
                num_classes: int | None = None, size: tuple[int, int] | None = None,
                preprocess: Preprocess | None = None) -> Dataset:
    """Images by class folder; resized and centre-cropped to `size` (H, W) when they differ from it, scaled to
    0..1 and normalised by `preprocess` (compressor/preprocess.py). Past IN_MEMORY_BYTES of inputs, they are
    decoded in batches into a read-only disk-backed array (numpy.memmap) instead of memory."""
    pre = preprocess or Preprocess()
    class_dirs = _class_dirs(path)
    if class_dirs:
        labels, names = _folder_labels(path, [d.name for d in class_dirs], classes, num_classes)
        files, y = _image_files(class_dirs, labels)
    else:  # images without labels: the teacher's answers stand in for them
        files, y, names = _loose_images(path), None, ()
    if not files:
        raise CompressError(f"no images found under {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    decode = _decoder(channels, size, pre)
    first = decode(files[0], None)
    if len(files) * first.nbytes <= IN_MEMORY_BYTES:
        x = np.stack([first] + [decode(f, first.shape) for f in files[1:]])
    else:
        x = _stream_images(path, files, first, decode)
    how = "pixels / 255" + (f", resized and centre-cropped to {size[0]}x{size[1]}" if size else "") + \
        (f", normalised ({pre.name}: mean {pre.mean}, std {pre.std})" if pre.mean else "")
    return Dataset(x, y, names, str(path), how)


def _stream_images(path: Path, files: list[Path], first: np.ndarray,
                   decode: Callable[[Path, tuple[int, ...] | None], np.ndarray]) -> np.memmap:
    """The images decoded batch by batch into a disk-backed array, with a progress bar. float32, as the model
    takes them: uint8 pixels would be 4x smaller on disk but every consumer would then need a float copy (conform)
    or a lazy array that numpy and torch functions do not accept."""
    shape = (len(files), *first.shape)
    check_disk(path, shape, copies=2)  # the decoded images, then split() writes them again in split order
    rows = _batch_rows(first.nbytes)

    def batches(advance: Callable[[int], None]) -> Iterator[np.ndarray]:
        buf = np.empty((rows, *first.shape), np.float32)  # one buffer, reused: written out before the next batch
        for i in range(0, len(files), rows):
            n = min(rows, len(files) - i)
            for k in range(n):
                buf[k] = first if i + k == 0 else decode(files[i + k], first.shape)
            yield buf[:n]
            advance(n)

    with _progress(f"decoding {len(files):,} images from {path.name}", len(files)) as advance:
        return _spill(shape, batches(advance), "r", path)


def _batch_rows(row_bytes: int) -> int:
    return max(1, min(STREAM_BATCH, STREAM_BATCH_BYTES // max(row_bytes, 1)))


def check_disk(source: Path | str, shape: tuple[int, ...], copies: int) -> None:
    """One line when the temporary folder cannot hold `copies` float32 arrays of `shape`."""
    folder = tempfile.gettempdir()  # inside a run: the run's own temporary folder (compressor/runs.py)
    need = copies * math.prod(shape) * 4
    free = shutil.disk_usage(folder).free
    if need > free:
        raise CompressError(f"{source}: its {shape[0]:,} decoded images need {_size(need)} of temporary disk space "
                            f"in {folder} and only {_size(free)} is free; free space there or set TMPDIR to a folder "
                            "on a larger disk")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _spill(shape: tuple[int, ...], chunks: Iterable[np.ndarray], mode: str, source: Path | str) -> np.memmap:
    """`chunks` (float32 rows, in order) written to a temporary file in the run's temporary folder, then mapped.

    Written with file writes, not through the mapping, so the pages go to the page cache and never count in this
    process's memory. The file is unlinked as soon as it is mapped: the kernel frees its space when the last
    mapping goes, so no end of the run (an error, SIGTERM, even SIGKILL) leaves it behind, and being under the
    temporary folder it never reaches the published output."""
    fd, name = tempfile.mkstemp(prefix="images-", suffix=".float32")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(np.ascontiguousarray(chunk, np.float32).data)
        x = np.memmap(name, np.float32, mode, shape=shape)
        x.rows_fd = os.open(name, os.O_RDONLY)  # _gather reads rows through it; closed with x
        weakref.finalize(x, os.close, x.rows_fd)
        return x
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CompressError(f"{source}: the disk filled up while writing its decoded images to "
                                f"{Path(name).parent}; free space there or set TMPDIR to a folder on a larger disk"
                                ) from None
        raise
    finally:
        os.unlink(name)


@contextlib.contextmanager
def _progress(what: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (stdout may carry --json), gone when done; yields advance(n)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.update(task, advance=n)


def load_text(path: Path, tokenizer: str | None, input_shape: tuple[int, ...] | None,
              num_classes: int | None = None) -> Dataset:
    """A text file or JSONL tokenised to the model's sequence length (compressor/text.py)."""
    if input_shape is None or len(input_shape) != 2:
        raise CompressError(f"text data feeds a model that takes token ids of shape (batch, length); this one takes "
                            f"{tuple(input_shape or ())}: give --input-shape 1,LENGTH or other data")
    tok = text.load_tokenizer(tokenizer)
    texts, labels = text.read_examples(path)
    y = None if labels is None else np.asarray(labels, np.int64)
    if y is not None and num_classes is not None and y.max() >= num_classes:
        raise CompressError(f"labels in {path} go up to {int(y.max())} but the model has {num_classes} outputs; "
                            "fix the labels or the model")
    names = tuple(str(i) for i in range(int(y.max()) + 1)) if y is not None else ()
    ids = text.tokenize(texts, tok, input_shape[1])
    how = f"tokenised by {Path(tokenizer).name}/tokenizer.json, padded or cut to {input_shape[1]} tokens " \
          f"(vocabulary {text.vocab_size(tok):,})"
    return Dataset(ids, y, names, str(path), how)


def conform(data: Dataset, input_dtype: str = "float32") -> Dataset:
    """Inputs as the model takes them: integers for an integer model, else float32 (uint8 scaled like images)."""
    x = data.x
    if np.issubdtype(np.dtype(input_dtype), np.integer):
        if x.dtype.kind not in "iu":
            raise CompressError(f"the model takes {input_dtype} inputs (such as token ids) but {data.source} holds "
                                f"{x.dtype} values ({data.scale}); give an .npz whose x holds integers")
        return replace(data, x=x.astype(input_dtype, copy=False))
    if x.dtype == np.uint8:  # 0..255 pixels: scaled as image files are, or a model trained on images sees 255x
        return replace(data, x=x.astype(np.float32) / 255.0, scale="uint8 / 255, as image files are scaled")
    if x.dtype.kind in "iu":
        return replace(data, x=x.astype(np.float32), scale=f"{x.dtype} as float32, unscaled")
    return replace(data, x=x.astype(np.float32, copy=False))


def load(spec: str, channels: int | None = None, *, input_dtype: str = "float32", num_classes: int | None = None,
         classes: tuple[str, ...] | None = None, input_shape: tuple[int, ...] | None = None,
         preprocess: Preprocess | None = None, tokenizer: str | None = None) -> Dataset:
    """`digits`, `random` (needs `input_shape`), a folder of images by class, or an .npz file; `num_classes` and
    `classes` (the model's) are checked before anything is built from the labels."""
    if spec == "digits":
        return conform(load_digits(), input_dtype)
    if spec == RANDOM:
        if input_shape is None:
            raise CompressError("--data random needs the model's input shape; pass --input-shape")
        return random_inputs(input_shape, input_dtype)
    p = Path(spec)
    if not p.exists():
        raise CompressError(f"data {spec!r} not found; give 'digits', a folder of images by class, or an .npz file")
    if p.is_dir():
        size = tuple(input_shape[-2:]) if input_shape is not None and len(input_shape) == 4 else None
        return conform(load_folder(p, channels, classes, num_classes, size, preprocess), input_dtype)
    if p.suffix == ".npz":
        return conform(load_npz(p, num_classes), input_dtype)
    if p.suffix in text.TEXT_SUFFIXES:
        return conform(load_text(p, tokenizer, input_shape, num_classes), input_dtype)
    raise CompressError(f"data {spec!r} is not a folder, an .npz, a .txt or a .jsonl; give 'digits', 'random', a folder "
                        "of images by class, an .npz, or text with --tokenizer")


def random_inputs(input_shape: tuple[int, ...], input_dtype: str = "float32", n: int = RANDOM_SAMPLES,
                  seed: int = 0) -> Dataset:
    """Unlabelled random inputs of the model's shape and dtype, for an export-only run (parity, no accuracy):
    standard normal floats, integers in [0, 100) (valid token ids for any vocabulary of 100 or more)."""
    x = random_array((n, *input_shape[1:]), input_dtype, np.random.default_rng(seed))
    return Dataset(x, None, (), RANDOM, "random inputs: parity only, no accuracy")


def random_array(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Random values of a dtype: booleans, integers in [0, 100), standard normal floats."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    if np.issubdtype(dt, np.integer):
        return rng.integers(0, 100, size=shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def sample_shape(spec: str, channels: int | None = None) -> tuple[int, ...] | None:
    """The shape of one sample, read cheaply (a header, one image); None when it cannot tell (load() will say why)."""
    try:
        if spec == "digits":
            return (1, 8, 8)
        p = Path(spec)
        if p.is_dir():
            from PIL import Image

            for d in _class_dirs(p) or [p]:
                for f in _visible(list(d.iterdir())):
                    if f.suffix.lower() in IMAGE_SUFFIXES:
                        with Image.open(f) as im:  # images are resized to the model's size: channels must fit
                            return (1 if _image_mode(channels, im.mode) == "L" else 3, -1, -1)
            return None
        if p.suffix == ".npz" and p.is_file():
            shape = _npy_headers(p).get("x", ((),))[0]
            return tuple(shape[1:]) if len(shape) >= 2 else None
    except Exception:  # noqa: BLE001 - unreadable data is reported by load()
        return None
    return None


def input_guess(spec: str) -> tuple[tuple[int, ...], str] | None:
    """The model input an .npz's x implies (batch 1, and int64 for integers such as token ids, else float32), for
    a model that does not say its own; None for other data (images are resized: their size says nothing)."""
    p = Path(spec)
    if p.suffix != ".npz" or not p.is_file():
        return None
    try:
        shape, dtype = _npy_headers(p)["x"]
    except Exception:  # noqa: BLE001 - no x, or not an .npz: load() says what is wrong
        return None
    if len(shape) < 2 or not all(d > 0 for d in shape[1:]):
        return None
    return (1, *shape[1:]), "int64" if np.dtype(dtype).kind in "iu" and np.dtype(dtype) != np.uint8 else "float32"


def check_shape(sample: tuple[int, ...] | None, input_shape: tuple[int, ...], spec: str = "") -> None:
    want = tuple(input_shape[1:])
    if sample is None or (len(sample) == len(want) and all(s in (-1, w) for s, w in zip(sample, want))):
        return  # -1: any size (images are resized to the model's)
    if spec == "digits":  # the demo's data, which is also --data's default: say so, and what else there is
        raise CompressError(f"the model takes inputs of shape {tuple(input_shape[1:])}, and --data digits (the "
                            "default, the demo's 8x8 digits) does not fit; pass --data FOLDER (images by class), "
                            "--data FILE.npz, or --data random for an export-only run")
    raise CompressError(f"data samples have shape {tuple(sample)} but the model takes "
                        f"{tuple(input_shape[1:])}; pass matching data or --input-shape")


def check_fits(data: Dataset, input_shape: tuple[int, ...], num_classes: int | None) -> None:
    """The data must match the model: sample shape, and labels within its outputs."""
    check_shape(tuple(data.x.shape[1:]), input_shape)
    if data.y is not None and num_classes is not None and int(data.y.max()) >= num_classes:
        raise CompressError(f"labels go up to {int(data.y.max())} but the model has {num_classes} outputs; "
                            "fix the labels or the model")


def check_size(data: Dataset) -> str | None:
    """An error below MIN_SAMPLES; below WARN_SAMPLES, the warning to show (and record)."""
    n = len(data)
    if n < MIN_SAMPLES:
        raise CompressError(f"{data.source} has {n} sample{'s' * (n != 1)}; at least {MIN_SAMPLES} are needed to "
                            "split it into train, validation and test sets: give more data")
    if n < WARN_SAMPLES:
        test = math.ceil(n * 0.2)  # as split() makes it
        margin = 100 * 1.96 * math.sqrt(0.25 / test)  # the widest 95% interval of an accuracy measured on `test`
        return (f"{data.source} has only {n} samples: accuracy measured on its {test} test samples can be off by "
                f"up to ±{margin:.0f} points; {WARN_SAMPLES} or more give a reliable figure")
    return None


def split(data: Dataset, seed: int = 0, val: float = 0.15, test: float = 0.2) -> Splits:
    """Deterministic split, stratified when labelled; at least MIN_SAMPLES."""
    from sklearn.model_selection import train_test_split

    check_size(data)
    idx = np.arange(len(data))
    strat = None
    if data.y is not None:
        # np.unique, not np.bincount: memory follows the number of samples, not the largest label. As before,
        # a label with fewer than 3 samples, or none (a gap), means an unstratified split: the same splits
        counts = np.unique(data.y, return_counts=True)[1]
        strat = data.y if counts.min() >= 3 and len(counts) == int(data.y.max()) + 1 else None
    rest, te = train_test_split(idx, test_size=test, random_state=seed, stratify=strat)
    strat_rest = strat[rest] if strat is not None else None
    tr, va = train_test_split(rest, test_size=val / (1 - test), random_state=seed, stratify=strat_rest)
    if isinstance(data.x, np.memmap):
        return _split_on_disk(data, tr, va, te)

    def take(i: np.ndarray) -> Dataset:
        return replace(data, x=data.x[i], y=None if data.y is None else data.y[i])

    return Splits(take(tr), take(va), take(te))


def _split_on_disk(data: Dataset, *parts: np.ndarray) -> Splits:
    """The splits of a disk-backed set: its rows copied, a batch at a time, into one new disk-backed array in
    train, val, test order, each split a slice of it (a memmap again, in the same order as the in-memory
    path's). Indexing a memmap with the permutation instead would copy the whole set into memory."""
    order = np.concatenate(parts)
    shape = (len(order), *data.x.shape[1:])
    check_disk(data.source, shape, copies=1)
    # "c" (copy-on-write): writable, as torch.from_numpy wants, yet never written back to the file
    x = _spill(shape, _gather(data.x, order), "c", data.source)
    bounds = np.cumsum([0, *map(len, parts)])
    return Splits(*(replace(data, x=x[a:b], y=None if data.y is None else data.y[p])
                    for a, b, p in zip(bounds[:-1], bounds[1:], parts)))


def _gather(x: np.memmap, order: np.ndarray) -> Iterator[np.ndarray]:
    """x[order] a batch at a time, in one buffer reused (each batch is written out before the next).

    Rows are read from the file (pread), not through the mapping: the kernel maps a file's pages in large
    blocks (a 600 KB row read at random mapped 2 MB here), which would count several times the batch in this
    process's memory. An array _spill did not make is read through its mapping, given back after each batch."""
    row_bytes = int(np.prod(x.shape[1:])) * x.itemsize
    rows = _batch_rows(row_bytes)
    fd = getattr(x, "rows_fd", None)
    buf = np.empty((rows, *x.shape[1:]), x.dtype)
    for i in range(0, len(order), rows):
        idx = order[i:i + rows]
        if fd is None:
            yield np.asarray(x[idx])
            _release(x)
            continue
        for k, j in enumerate(idx):
            if os.preadv(fd, [buf[k]], int(j) * row_bytes) != row_bytes:
                raise OSError(errno.EIO, "short read of a decoded image from its temporary file")
        yield buf[:len(idx)]


def _release(x: np.memmap) -> None:
    """Drop this process's mapping of the pages of `x` read so far (they are re-read from the file if needed).
    Not for a copy-on-write ("c") map, whose pages written in memory would be lost."""
    if x.mode == "c" or not hasattr(mmap, "MADV_DONTNEED"):
        return
    base = x
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, mmap.mmap):
        base.madvise(mmap.MADV_DONTNEED)
