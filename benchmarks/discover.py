"""What to benchmark: artifacts from an output folder's manifest.json, or loose files.

Timing uses inputs of the right shape and dtype (the held-out data is not in the output
folder); parity inputs are given in the model's own layout (as PyTorch takes them) and
converted to each artifact's layout (TFLite/TF.js artifacts may take NHWC).
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
    return exporters.input_spec(path, fmt)


def format_of(path: Path) -> str:
    fmt = exporters.format_of(path) or {".pt": "torchscript", ".pt2": "pt2"}.get(path.suffix)
    if fmt is None:
        raise CompressError(f"{path}: not an artifact this can benchmark (.onnx, .tflite, TF.js folder with "
                            "model.json, .pt TorchScript, .pt2); or pass an output folder with manifest.json")
    return fmt


def item(name: str, path: Path, fmt: str, variant: str, inputs: list[Any], parity: dict[str, Any] | None) -> Item:
    """A benchmark item from an artifact's manifest facts (or an Artifact's): its input from the recorded
    specs (TFLite's from the file: a quantized input is fed float data)."""
    if inputs and fmt != "tflite":
        first = inputs[0]
        shape, dtype = (batch1(first["shape"]), first["dtype"]) if isinstance(first, dict) else \
            (batch1(first.shape), first.dtype)
    else:
        shape, dtype = spec_of(path, fmt)
    p = parity or {}
    return Item(name, path, fmt, variant, shape, dtype, {"accuracy": p.get("accuracy"), "export_parity": p or None})


def from_manifest(folder: Path) -> tuple[list[Item], dict[str, Any]]:
    man = json.loads((folder / "manifest.json").read_text())
    items = []
    for a in man.get("artifacts", []):
        if a["format"] not in BENCHED_FORMATS:
            continue
        path = folder / a["path"]
        if not path.exists():
            raise CompressError(f"{path} is listed in {folder}/manifest.json but missing; re-run the export")
        items.append(item(a["name"], path, a["format"], a["variant"], a.get("inputs") or [], a.get("parity")))
    return items, man


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
