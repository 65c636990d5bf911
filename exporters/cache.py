"""Conversion cache: converter outputs keyed by what they are made from, so an unchanged model converts nothing.

Used by the TF route (exporters/tf_route.py: onnx2tf's SavedModel; tflite: each variant's bytes; tfjs:
tensorflowjs_converter's folder). A key is the sha256 of the converter's input, its options and versions.

An entry is a folder <root>/<key>/ with the output's files under data/ and meta.json (each file's size and
sha256, the seconds the conversion took). It is written in a temporary folder inside the cache and renamed
into place in one step, so a reader sees a whole entry or none; two writers racing for one key both succeed
(the second rename loses and drops its copy). A reader checks what it got against meta.json: a truncated,
edited or half-evicted entry is a miss, and the next store replaces it. The cache is never an error: a
folder that cannot be read or written is a miss and the converter runs; every artifact is parity-checked
after conversion either way.

Where: COMPRESS_CONVERSION_CACHE (a folder, or `off`), else <COMPRESS_CACHE or ~/.cache/edge-compress>/
conversions. Size: at most COMPRESS_CONVERSION_CACHE_GB (default 5) GB; the least recently used entries go
first. (The folder logic mirrors compressor/demo.py:cache_dir, which exporters may not import.)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from compressor.core.files import sha256_of

VERSION = 1  # bump when an entry's layout or a key's meaning changes
DEFAULT_GB = 5.0
STALE = 3600  # seconds after which a writer's leftover temporary folder is removed


def root() -> Path | None:
    """The cache folder, or None when COMPRESS_CONVERSION_CACHE=off."""
    given = os.environ.get("COMPRESS_CONVERSION_CACHE", "")
    if given.strip().lower() == "off":
        return None
    if given:
        return Path(given)
    base = os.environ.get("COMPRESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edge-compress")
    return Path(base) / "conversions"


def limit_bytes() -> int:
    try:
        gb = float(os.environ.get("COMPRESS_CONVERSION_CACHE_GB") or DEFAULT_GB)
    except ValueError:
        gb = DEFAULT_GB
    return int(max(gb, 0.0) * 1e9)


def make_key(**parts) -> str:
    text = json.dumps({"v": VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def files_digest(paths: list[Path]) -> str:
    """sha256 of files' contents in the order given (streamed: a SavedModel's weights can be large)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(sha256_of(p).encode())
    return h.hexdigest()


def array_digest(x: np.ndarray) -> str:
    h = hashlib.sha256(f"{x.dtype.descr}{x.shape}".encode())
    h.update(memoryview(np.ascontiguousarray(x)).cast("B"))  # no copy of a large calibration set
    return h.hexdigest()


def versions(*names: str, path: list[str] | None = None) -> dict[str, str]:
    """Installed versions of `names` (in the environment at `path`, a list of site-packages, when given)."""
    want = {n.lower().replace("-", "_") for n in names}
    found = {}
    for d in metadata.distributions(**({"path": path} if path is not None else {})):
        name = (d.metadata["Name"] or "").lower().replace("-", "_")
        if name in want:
            found[name] = d.version
    return dict(sorted(found.items()))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _meta(entry: Path) -> dict | None:
    try:
        meta = json.loads((entry / "meta.json").read_text())
        return meta if meta.get("version") == VERSION and isinstance(meta.get("files"), dict) else None
    except (OSError, ValueError, AttributeError):
        return None


def _matches(folder: Path, files: dict) -> bool:
    """Every file meta.json lists is in `folder` with its size and digest, and nothing else."""
    try:
        present = {str(p.relative_to(folder)) for p in _files(folder)}
        return present == set(files) and all(
            (folder / n).stat().st_size == f["bytes"] and sha256_of(folder / n) == f["sha256"] for n, f in files.items())
    except (OSError, KeyError, TypeError):
        return False


def _materialize(src: Path, dest: Path, link: bool) -> None:
    """dest/… = src/…: hard links where allowed (read-only uses), copies otherwise."""
    for p in _files(src):
        to = dest / p.relative_to(src)
        to.parent.mkdir(parents=True, exist_ok=True)
        try:
            if not link:
                raise OSError
            os.link(p, to)
        except OSError:
            shutil.copy2(p, to)


def fetch(key: str | None, dest: Path, *, link: bool = False) -> dict | None:
    """The entry's files into the (new) folder `dest` and its meta.json; None on a miss (dest then absent)."""
    folder = root()
    if key is None or folder is None:
        return None
    entry = folder / key
    meta = _meta(entry)
    if meta is None:
        return None
    shutil.rmtree(dest, ignore_errors=True)
    try:
        _materialize(entry / "data", dest, link)
        ok = _matches(dest, meta["files"])  # what the job will use, not just what the cache holds
    except OSError:
        ok = False
    if not ok:
        shutil.rmtree(dest, ignore_errors=True)
        _discard(entry)
        return None
    try:
        os.utime(entry / "meta.json")  # most recently used: evicted last
    except OSError:
        pass
    return meta


def fetch_bytes(key: str | None, name: str) -> tuple[bytes, dict] | None:
    """A one-file entry's bytes (checked against meta.json) and meta; None on a miss."""
    folder = root()
    meta = _meta(folder / key) if key and folder else None
    if meta is None or set(meta["files"]) != {name}:
        return None
    try:
        data = (folder / key / "data" / name).read_bytes()
    except OSError:
        data = b""
    info = meta["files"][name]
    if len(data) != info.get("bytes") or hashlib.sha256(data).hexdigest() != info.get("sha256"):
        _discard(folder / key)
        return None
    try:
        os.utime(folder / key / "meta.json")  # most recently used: evicted last
    except OSError:
        pass
    return data, meta


def store(key: str | None, src: Path, seconds: float, *, skip: tuple[str, ...] = ()) -> str | None:
    """Keep the folder or file `src` (files matching a `skip` pattern left out) under `key`; returns why it
    was not kept (a one-line reason), or None."""
    folder = root()
    if key is None or folder is None:
        return None
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-{os.getpid()}-", dir=folder))
        data = tmp / "data"
        if src.is_dir():
            shutil.copytree(src, data, ignore=shutil.ignore_patterns(*skip))
        else:
            data.mkdir()
            shutil.copy2(src, data / src.name)
        files = {str(p.relative_to(data)): {"bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in _files(data)}
        meta = {"version": VERSION, "seconds": round(seconds, 3), "created": time.time(), "files": files,
                "bytes": sum(f["bytes"] for f in files.values())}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        entry = folder / key
        if entry.exists() and not _matches(entry / "data", (_meta(entry) or {}).get("files", {})):
            _discard(entry)  # damaged (truncated, half-evicted): replace it
        try:
            os.rename(tmp, entry)  # atomic; fails when another writer got there first, which is fine
        except OSError:
            if _meta(entry) is None:
                raise
        evict(folder)
        return None
    except OSError as e:
        return f"not stored in the conversion cache {folder}: {e.strerror or type(e).__name__}"
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def store_bytes(key: str | None, name: str, data: bytes, seconds: float) -> str | None:
    folder = root()
    if key is None or folder is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        return store(key, path, seconds)


def _discard(entry: Path) -> None:
    """Move an entry aside (readers see it gone at once), then delete it."""
    gone = entry.parent / f".bad-{entry.name}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        os.rename(entry, gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def evict(folder: Path) -> None:
    """Least recently used entries out until the cache holds at most limit_bytes(); stale temporaries too."""
    entries = []
    for p in folder.iterdir():
        if p.name.startswith("."):
            try:
                if time.time() - p.stat().st_mtime > STALE:  # a killed writer's leftovers
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass
            continue
        meta = _meta(p)
        try:
            used = (p / "meta.json").stat().st_mtime
        except OSError:
            used = 0.0
        entries.append((used, int(meta.get("bytes", 0)) if meta else 0, p))
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries):
        if total <= limit_bytes():
            break
        _discard(p)
        total -= size


def status(key: str | None, meta: dict | None, seconds: float, note: str | None = None,
           prefix: str = "cache") -> dict:
    """The artifact's record: off (no key), hit (with the seconds the stored conversion took, less this
    fetch) or miss."""
    if key is None:
        return {prefix: "off"}
    if meta is not None:
        return {prefix: "hit", f"{prefix}_seconds_saved": round(max(0.0, meta.get("seconds", 0.0) - seconds), 2)}
    return {prefix: "miss", **({f"{prefix}_note": note} if note else {})}
