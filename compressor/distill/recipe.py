"""YAML recipes: safe reading (`read`), and distillation recipes onto the same frozen DistillConfig as the flags.

    # distill.yaml
    student: auto
    ratio: 0.25
    methods: [kd, dkd]
    weights: [1.0, 0.5]
    temperature: 4
    epochs: 40

The keys may also sit under a top-level `distill:`. yaml.safe_load builds only plain data
(no tags, no objects), and compressor.config.from_mapping rejects unknown keys: loading a
recipe never runs code. A run's recipe (every CLI option, distillation keys among them) is
compressor/recipe.py's; it reads its YAML through `read` here.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..core.errors import CompressError
from .config import DistillConfig


def read(text: str, where: str = "recipe") -> Any:
    """A recipe's YAML as plain data (dicts, lists, scalars); anything else is a one-line CompressError."""
    import yaml

    from ..config import check_depth

    try:
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:
        tag = (getattr(e, "problem", "") or "").rpartition("tag ")[2] or "(unknown)"
        raise CompressError(f"{where} uses the YAML tag {tag}, which would build a Python object; recipes are "
                            "plain data: remove the tag") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise CompressError(f"{where} is not valid YAML{at}; fix its syntax") from None
    except RecursionError:  # PyYAML's parser recurses once per level: [[[[...]]]] exhausts the stack
        raise CompressError(f"{where} nests lists or mappings too deeply for a recipe; a recipe is flat "
                            "options (see docs/api.md#recipes)") from None
    check_depth(data, where)
    return data


def read_file(path: str | Path) -> Any:
    """`read` of a recipe file; a missing or unreadable file is a one-line CompressError."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise CompressError(f"recipe {p} not found; check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CompressError(f"cannot read recipe {p} ({type(e).__name__}); give a YAML text file") from None
    return read(text, str(p))


def parse(text: str, where: str = "recipe") -> DistillConfig:
    """A distillation-only recipe (flat, or under `distill:`) as a DistillConfig."""
    return _config(read(text, where), where)


def load(path: str | Path) -> DistillConfig:
    """`parse` of a recipe file (compressor/recipe.py reads a whole run's recipe, every option)."""
    return _config(read_file(path), str(path))


def _config(data: Any, where: str) -> DistillConfig:
    from ..config import from_mapping

    if data is None:
        data = {}
    if isinstance(data, dict) and set(data) == {"distill"}:
        data = data["distill"] or {}
    return from_mapping(DistillConfig, data, where)


def dump(cfg: DistillConfig) -> str:
    """The recipe that reproduces `cfg` (what a run writes next to its checkpoints)."""
    import yaml

    data: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        data[f.name] = list(v) if isinstance(v, tuple) else v
    return yaml.safe_dump(data, sort_keys=False)
