"""The run cache: a run whose every input is unchanged republishes the output it made before.

CI re-runs the same model on every push; converting and checking it again gives the same bytes and the
same figures. The key covers everything a run's output depends on: the options (the output folder aside),
the content of every file and folder the run reads, the installed distributions (this environment's and the
TF.js converter's), the npm runtimes' lock file, the Chromium binary, the project's own code, and the
COMPRESS_* settings. On a hit the stored files are checked against their sha256 (exporters.cache.fetch):
the artifacts are byte for byte those whose parity checks the manifest records, and the manifest says so
(`run_cache`: the key and when those checks ran).

Not cached: runs that train (distillation, QAT: long, and what they make depends on more than their inputs),
runs that benchmark (timings are measured anew), and inputs over MAX_INPUT_BYTES (hashing them would cost
what the cache saves). COMPRESS_CONVERSION_CACHE=off turns it off with the conversion cache.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from exporters import cache

from . import manifest as manifests
from .config import RunConfig
from .core import chromium
from .core.files import sha256_of

MAX_INPUT_BYTES = 2 * 10**9
PACKAGES = ("compressor", "exporters", "benchmarks")
UNKEYED_OPTIONS = ("out", "overwrite")  # where the output goes does not change what it holds


def uncacheable(cfg: RunConfig) -> str | None:
    """Why the run is not cached, or None."""
    if cfg.distill is not None:
        return "the run trains a student"
    if cfg.quantize is not None and type(cfg.quantize).__name__ == "QAT":
        return "the run trains (QAT)"
    if cfg.bench:
        return "the run benchmarks"
    return None


def _tree_digest(path: Path, budget: list[int]) -> str | None:
    """sha256 over a file's content, or a folder's relative names and contents; None past the byte budget."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        budget[0] -= f.stat().st_size
        if budget[0] < 0:
            return None
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        h.update(sha256_of(f).encode())
    return h.hexdigest()


def _code_digest() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def _distributions(path: list[str] | None = None) -> list[str]:
    found = metadata.distributions(**({"path": path} if path is not None else {}))
    return sorted(f"{d.metadata['Name']}=={d.version}" for d in found)


def _runtimes() -> dict[str, Any]:
    """What the browser checks and the TF.js converter run on."""
    tfjs_env = sorted(str(p) for p in (chromium.home() / ".venv-tfjs").glob("lib/python*/site-packages"))
    lock = chromium.home() / "package-lock.json"
    browser = chromium.chromium_path()
    return {"tfjs_env": _distributions(tfjs_env) if tfjs_env else [],
            "npm_lock": sha256_of(lock) if lock.is_file() else None,
            "chromium": [browser.stat().st_size, browser.stat().st_mtime_ns] if browser.exists() else None}


def key(cfg: RunConfig, inputs: list[str]) -> str | None:
    """The run's key, or None when it is not cached (the cache is off, or an input is too large to hash)."""
    if cache.root() is None or uncacheable(cfg):
        return None
    budget = [MAX_INPUT_BYTES]
    digests = {}
    for name in inputs:
        p = Path(name)
        digests[name] = _tree_digest(p, budget) if p.exists() else "missing"
        if digests[name] is None:
            return None
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in UNKEYED_OPTIONS}
    settings = {k: v for k, v in os.environ.items() if k.startswith("COMPRESS_") and "CACHE" not in k}
    return cache.make_key(kind="run", options=options, inputs=digests, code=_code_digest(),
                          versions=_distributions(), runtimes=_runtimes(), settings=settings)


def restore(run_key: str | None, dest: Path) -> dict[str, Any] | None:
    """The stored output into the (empty, staged) folder `dest`; its manifest, marked as restored; None on a miss."""
    if run_key is None:
        return None
    t0 = time.perf_counter()
    inner = dest / ".run-cache"  # fetched inside, then moved up: the staged folder itself stays as made
    if cache.fetch(run_key, inner) is None:
        return None
    for p in inner.iterdir():
        os.replace(p, dest / p.name)
    inner.rmdir()
    path = dest / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["run_cache"] = {"status": "hit", "key": run_key, "checked": manifest.get("created"),
                             "note": "the artifacts are byte for byte those checked then (sha256); nothing was "
                                     "converted or run again"}
    manifest["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    manifest["step_seconds"] = {"run_cache": round(time.perf_counter() - t0, 3)}
    manifests.write(manifest, path)
    return manifest


def save(run_key: str | None, folder: Path, seconds: float) -> str | None:
    """Keep the finished output under the key; why it was not kept, or None."""
    return cache.store(run_key, folder, seconds) if run_key is not None else None
