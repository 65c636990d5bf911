"""manifest.json: every artifact with its size, checksum, I/O, parity figures, tool versions and commit."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from .core.artifact import Artifact
from .core.files import digest
from .core.provenance import commit, tool_versions


def artifact_entry(a: Artifact, root: Path) -> dict[str, Any]:
    size, sha = digest(a.path)
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


def finite(x: Any) -> Any:
    """`x` with every NaN or infinite float as None: JSON has no NaN (JSON.parse and jq refuse the file),
    and a figure that could not be measured (an accuracy without labels) is null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def write(manifest: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(finite(manifest), indent=2, default=str, allow_nan=False) + "\n")
