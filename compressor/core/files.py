"""The files that make up an artifact, their sizes (raw and gzip, as a web server sends them) and digest."""
from __future__ import annotations

import functools
import gzip
import hashlib
import shutil
from pathlib import Path
from typing import Any


def onnx_external_data(path: Path) -> list[Path]:
    """Sibling files an ONNX model keeps its weights in (the dynamo exporter writes `*.onnx.data`)."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    locs = {e.value for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
            for e in t.external_data if e.key == "location"}
    return [path.parent / loc for loc in sorted(locs)]


def artifact_files(path: Path, fmt: str = "") -> list[Path]:
    """Every file needed to load the artifact at `path` (a file or a folder), in sorted order."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    files = [path]
    if fmt == "onnx" or path.suffix == ".onnx":
        files += [p for p in onnx_external_data(path) if p.is_file()]
    return files


def gzip_size(data: bytes) -> int:
    """Bytes after gzip -9, as a server with gzip would send them."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


@functools.lru_cache(maxsize=4096)
def _gzip_file(path: Path, size: int, mtime_ns: int) -> int:
    return gzip_size(path.read_bytes())


def gzip_file_size(path: Path) -> int:
    """gzip_size of a file's bytes; once per file version (gzip -9 of a 45 MB model takes seconds, and a
    bundle's model files are sized for the model, its bundle and the bundle's manifest)."""
    st = path.stat()
    return _gzip_file(path.resolve(), st.st_size, st.st_mtime_ns)


def file_rows(folder: Path) -> list[dict[str, Any]]:
    """Each file of a folder: relative path, bytes, gzip bytes."""
    return [{"path": str(p.relative_to(folder)), "bytes": p.stat().st_size, "gzip_bytes": gzip_file_size(p)}
            for p in artifact_files(folder)]


def sizes(path: Path, fmt: str = "") -> dict[str, int]:
    """Raw bytes and gzip -9 bytes (per file, summed: what a server with gzip sends)."""
    files = artifact_files(path, fmt)
    return {"size_bytes": sum(f.stat().st_size for f in files), "gzip_bytes": sum(gzip_file_size(f) for f in files)}


def sha256_of(path: Path) -> str:
    """A file's sha256, read in blocks (models and SavedModels can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(path: Path) -> tuple[int, str]:
    """(size, sha256) of a file, or of a folder's files in sorted order (their relative names included)."""
    h, size = hashlib.sha256(), 0
    for f in artifact_files(path) if path.is_dir() else [path]:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        data = f.read_bytes()
        h.update(data)
        size += len(data)
    return size, h.hexdigest()


def remove(path: Path) -> None:
    """A file or folder gone, if it was there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
