"""manifest.json: every artifact with its size, checksum, I/O, parity figures, tool versions and commit."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from exporters.base import Artifact

TOOLS = ("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "tensorflow", "ai-edge-litert", "onnx2tf",
         "torch-pruning", "edge-compress")
ROOT = Path(__file__).resolve().parent.parent


def tool_versions(names: tuple[str, ...] = TOOLS) -> dict[str, str]:
    """Python's version and each installed package's (packages not installed are left out)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def commit() -> str:
    """The project's git commit (with -dirty when the tree has changes), or 'unknown' outside a checkout."""
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256) of a file, or of a folder's files in sorted order."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h, size = hashlib.sha256(), 0
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        data = f.read_bytes()
        h.update(data)
        size += len(data)
    return size, h.hexdigest()


def artifact_entry(a: Artifact, root: Path) -> dict[str, Any]:
    size, sha = file_digest(a.path)
    return {
        "name": a.name,
        "path": str(a.path.relative_to(root)),
        "format": a.format,
        "variant": a.variant,
        "size_bytes": size,
        "sha256": sha,
        "inputs": [dataclasses.asdict(t) for t in a.inputs],
        "outputs": [dataclasses.asdict(t) for t in a.outputs],
        "opset": a.opset,
        "convert_seconds": round(a.convert_seconds, 3),
        "parity": a.parity.to_dict() if a.parity else None,
        **a.extra,
    }


def with_quality(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every artifact row gets the same top-level figures, whichever step made it: held-out accuracy,
    its drop against the float model (points), top-1 agreement (from its parity check) and its size
    against the float32 artifact of the same format."""
    float_size = {e["format"]: e["size_bytes"] for e in entries if e["variant"] == "float32"}
    for e in entries:
        # a bundle's parity is its page's one example: not an accuracy figure
        p = (e.get("parity") or {}) if e["format"] != "web-bundle" else {}
        for key, src in (("accuracy", "accuracy"), ("accuracy_drop_points", "accuracy_drop_points"),
                         ("top1_agreement", "top1_agreement")):
            if e.get(key) is None and p.get(src) is not None:
                e[key] = p[src]
        base = float_size.get(e["format"])
        if base and e["variant"] != "float32" and e.get("size_ratio_vs_float32") is None:
            e["size_ratio_vs_float32"] = round(e["size_bytes"] / base, 4)
    return entries


def build(artifacts: list[Artifact], root: Path, **sections: Any) -> dict[str, Any]:
    return {
        "schema": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "tools": tool_versions(),
        **sections,
        "artifacts": with_quality([artifact_entry(a, root) for a in artifacts]),
    }


def write(manifest: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
