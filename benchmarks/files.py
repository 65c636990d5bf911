"""The files that make up an artifact, and its sizes (raw and gzip, as a web server would send them)."""
from __future__ import annotations

import gzip
from pathlib import Path


def onnx_external_data(path: Path) -> list[Path]:
    """Sibling files an ONNX model keeps its weights in (the dynamo exporter writes `*.onnx.data`)."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    locs = {e.value for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
            for e in t.external_data if e.key == "location"}
    return [path.parent / loc for loc in sorted(locs)]


def artifact_files(path: Path, fmt: str = "") -> list[Path]:
    """Every file needed to load the artifact at `path` (a file or a folder)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    files = [path]
    if fmt == "onnx" or path.suffix == ".onnx":
        files += [p for p in onnx_external_data(path) if p.is_file()]
    return files


def sizes(path: Path, fmt: str = "") -> dict[str, int]:
    """Raw bytes and gzip -9 bytes (per file, summed: what a server with gzip sends)."""
    raw = gz = 0
    for f in artifact_files(path, fmt):
        data = f.read_bytes()
        raw += len(data)
        gz += len(gzip.compress(data, compresslevel=9, mtime=0))
    return {"size_bytes": raw, "gzip_bytes": gz}
