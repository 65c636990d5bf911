"""What to benchmark: artifacts from an output folder's manifest.json, or loose files.

Timing uses inputs of the right shape and dtype (the held-out data is not in the output
folder); parity inputs are given in the model's own layout (as PyTorch takes them) and
converted to each artifact's layout (TFLite/TF.js artifacts may take NHWC).
An output folder's artifacts are checked against its manifest (size and sha256, as
compressor.core.files.digest made them): the manifest's figures describe those files only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import exporters
from compressor.core.artifact import batch1
from compressor.core.errors import CompressError
from compressor.core.files import digest

BENCHED_FORMATS = ("onnx", "tflite", "tfjs", "torchscript", "pt2")


@dataclass
class Item:
    name: str  # "onnx:float32", as in the manifest
    path: Path
    format: str
    variant: str
    input_shape: tuple[int, ...]  # batch 1, the artifact's layout
    input_dtype: str
    info: dict[str, Any] = field(default_factory=dict)  # size, gzip, parameters, MACs, accuracy, parity

    @property
    def reference(self) -> bool:
        return self.format in ("torchscript", "pt2")


def spec_of(path: Path, fmt: str) -> tuple[tuple[int, ...], str]:
    """(batch-1 input shape, dtype) read from the artifact itself, by the target that writes the format."""
    if fmt in ("torchscript", "pt2"):
        raise CompressError(f"cannot read the input of {path} ({fmt}); pass --input-shape")
    try:
        return exporters.input_spec(path, fmt)
    except CompressError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged file fails in its own library, each in its own way
        raise CompressError(f"{path} is not a readable {fmt} artifact ({type(e).__name__}); re-export it") from None


def format_of(path: Path) -> str:
    fmt = exporters.format_of(path) or {".pt": "torchscript", ".pt2": "pt2"}.get(path.suffix)
    if fmt is None:
        raise CompressError(f"{path}: not an artifact this can benchmark (.onnx, .tflite, TF.js folder with "
                            "model.json, .pt TorchScript, .pt2); or pass an output folder with manifest.json")
    return fmt


def item(name: str, path: Path, fmt: str, variant: str, inputs: list[Any], parity: dict[str, Any] | None) -> Item:
    """A benchmark item from an artifact's manifest facts (or an Artifact's): its input from the recorded
    specs (TFLite's from the file: a quantized input is fed float data)."""
    if len(inputs) > 1:
        raise CompressError(f"{name} takes {len(inputs)} inputs; the benchmark feeds models with one input and one "
                            "output today: time it in your app, or export a wrapper that takes one tensor")
    if inputs and fmt != "tflite":
        first = inputs[0]
        shape, dtype = (batch1(first["shape"]), first["dtype"]) if isinstance(first, dict) else \
            (batch1(first.shape), first.dtype)
    else:
        shape, dtype = spec_of(path, fmt)
    p = parity or {}
    return Item(name, path, fmt, variant, shape, dtype, {"accuracy": p.get("accuracy"), "export_parity": p or None})


def read_manifest(folder: Path) -> dict[str, Any]:
    """manifest.json of an output folder, its artifact entries checked enough to be used."""
    where = folder / "manifest.json"
    try:
        man = json.loads(where.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise CompressError(f"cannot read {where} ({type(e).__name__}); re-run the export that wrote it") from None
    arts = man.get("artifacts") if isinstance(man, dict) else None
    if not isinstance(arts, list) or not all(
            isinstance(a, dict) and all(isinstance(a.get(k), str) for k in ("name", "path", "format", "variant"))
            for a in arts):
        raise CompressError(f"{where} is not an output folder's manifest (no valid artifacts list); re-run the "
                            "export that wrote it")
    for a in arts:
        p = Path(a["path"])
        if p.is_absolute() or ".." in p.parts:  # its figures describe files in the folder, nothing else
            raise CompressError(f"{where} lists {a['path']!r}, outside the folder; re-run the export")
    return man


def from_manifest(folder: Path) -> tuple[list[Item], dict[str, Any]]:
    man = read_manifest(folder)
    items = []
    for a in man["artifacts"]:
        if a["format"] not in BENCHED_FORMATS:
            continue
        path = folder / a["path"]
        if not path.exists():
            raise CompressError(f"{path} is listed in {folder}/manifest.json but missing; re-run the export")
        items.append(item(a["name"], path, a["format"], a["variant"], a.get("inputs") or [], a.get("parity")))
    return items, man


def verify(folder: Path, man: dict[str, Any], accept: bool = False) -> list[dict[str, Any]]:
    """Each benchmarked artifact's size and sha256 against the manifest; returns the mismatches.

    A mismatch is refused (the manifest's accuracy and parity would be quoted for other files) unless
    `accept` (--accept-modified): then the caller records and prints them.
    """
    changed = []
    for a in man["artifacts"]:
        path = folder / a["path"]
        if a["format"] not in BENCHED_FORMATS or not path.exists():
            continue
        size, sha = digest(path)
        if size != a.get("size_bytes") or sha != a.get("sha256"):
            changed.append({"name": a["name"], "path": a["path"], "manifest_bytes": a.get("size_bytes"),
                            "bytes": size, "manifest_sha256": a.get("sha256"), "sha256": sha})
    if changed and not accept:
        what = "; ".join(f"{c['path']}: {difference(c)}" for c in changed)
        raise CompressError(f"{len(changed)} artifact(s) in {folder} no longer match its manifest.json ({what}); "
                            "re-export the folder, or pass --accept-modified to benchmark the files as they are")
    return changed


def difference(c: dict[str, Any]) -> str:
    if c["manifest_sha256"] is None:
        return "no sha256 in the manifest"
    sizes = f"{c['manifest_bytes']} -> {c['bytes']} bytes" if c["manifest_bytes"] != c["bytes"] else "same size"
    return f"sha256 {str(c['manifest_sha256'])[:12]} -> {c['sha256'][:12]}, {sizes}"


def discover(paths: list[Path]) -> tuple[list[Item], dict[str, Any] | None]:
    """Items to bench from one output folder (manifest.json) or a list of artifact files/folders."""
    if len(paths) == 1 and (paths[0] / "manifest.json").is_file():
        return from_manifest(paths[0])
    items = []
    for p in paths:
        if not p.exists():
            raise CompressError(f"{p} does not exist")
        fmt = format_of(p)
        shape, dtype = ((), "float32") if fmt in ("torchscript", "pt2") else spec_of(p, fmt)
        items.append(Item(f"{fmt}:{p.stem if p.is_file() else p.name}", p, fmt, "file", shape, dtype))
    canon = canonical_shape(items)
    for it in items:
        if not it.input_shape:
            it.input_shape = canon
    return items, None


def canonical_shape(items: list[Item]) -> tuple[int, ...]:
    """The model's own input layout: ONNX keeps PyTorch's, so prefer it."""
    for fmt in ("onnx", "torchscript", "pt2", "tflite", "tfjs"):
        for it in items:
            if it.format == fmt and it.input_shape:
                return it.input_shape
    raise CompressError("cannot tell the model's input shape; include the .onnx artifact")


def to_layout(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """x (canonical layout, any batch) in an artifact's layout `shape`, or None when they do not match."""
    if tuple(x.shape[1:]) == tuple(shape[1:]):
        return x
    if x.ndim == 4 and tuple(x.shape[2:]) + (x.shape[1],) == tuple(shape[1:]):
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # NCHW -> NHWC
    return None
