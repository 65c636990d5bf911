"""Teacher-output cache: computed once, memory-mapped on disk, keyed by teacher hash + data hash.

An entry is a folder <key>/ with one .npy per array and meta.json (shapes and sha256 of each
file). It is written in a private temporary folder and renamed into place in one step, so a
reader sees a whole entry or none; two writers racing for the same key both succeed (the
second rename loses and drops its copy). Readers check the checksums before trusting it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.errors import CompressError
from ..core.files import sha256_of

VERSION = 1  # bump when the layout or the meaning of the cached arrays changes


def default_dir() -> Path:
    from ..demo import cache_dir

    return cache_dir() / "teacher-outputs"


def data_hash(x: np.ndarray) -> str:
    h = hashlib.sha256(f"{x.dtype}{x.shape}".encode())
    h.update(np.ascontiguousarray(x))  # the buffer itself: tobytes() would copy a disk-backed set to memory
    return h.hexdigest()


def make_key(teacher_sha: str, data_sha: str, features: list[str]) -> str:
    text = json.dumps({"v": VERSION, "teacher": teacher_sha, "data": data_sha, "features": sorted(features)})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read(root: Path, key: str) -> dict[str, np.ndarray] | None:
    """The entry's arrays, memory-mapped read-only; None when missing or failing its checksums."""
    entry = Path(root) / key
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    out = {}
    for name, info in meta["arrays"].items():
        path = entry / info["file"]
        try:
            if sha256_of(path) != info["sha256"]:
                return None
            out[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None
    return out


def write(root: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-{os.getpid()}-", dir=root))
    try:
        meta = {"version": VERSION, "arrays": {}}
        for i, (name, a) in enumerate(sorted(arrays.items())):
            file = f"a{i}.npy"
            np.save(tmp / file, np.ascontiguousarray(a), allow_pickle=False)
            meta["arrays"][name] = {"file": file, "shape": list(a.shape), "dtype": str(a.dtype),
                                    "sha256": sha256_of(tmp / file)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        entry = root / key
        if entry.exists() and read(root, key) is None:
            # a damaged entry (disk trouble, a hand edit): move it aside, then replace it
            bad = root / f".{key}.bad-{os.getpid()}"
            os.replace(entry, bad)
            shutil.rmtree(bad, ignore_errors=True)
        try:
            os.rename(tmp, entry)  # atomic; fails if another writer got there first, which is fine
        except OSError:
            if read(root, key) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def get_or_compute(root: Path, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    got = read(root, key)
    if got is None:
        try:
            Path(root).mkdir(parents=True, exist_ok=True)  # before computing: an unusable folder fails fast
        except OSError as e:
            raise _unusable(root, e) from None
        arrays = compute()
        try:
            write(root, key, arrays)
        except OSError as e:
            raise _unusable(root, e) from None
        got = read(root, key)
        if got is None:
            raise _unusable(root, OSError("an entry written there cannot be read back"))
    return got


def _unusable(root: Path, e: OSError) -> CompressError:
    return CompressError(f"cannot use the teacher-output cache {root} ({e.strerror or e}); set COMPRESS_CACHE "
                         "(or --teacher-cache-dir) to a writable folder, or pass --no-teacher-cache")
