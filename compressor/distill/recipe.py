"""YAML recipes for distillation: plain data onto the same frozen DistillConfig as the CLI flags.

    # distill.yaml
    student: auto
    ratio: 0.25
    methods: [kd, dkd]
    weights: [1.0, 0.5]
    temperature: 4
    epochs: 40

The keys may also sit under a top-level `distill:`. yaml.safe_load builds only plain data
(no tags, no objects), and compressor.config.from_mapping rejects unknown keys: loading a
recipe never runs code.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..core.errors import CompressError
from .config import DistillConfig


def parse(text: str, where: str = "recipe") -> DistillConfig:
    import yaml

    from ..config import check_depth, from_mapping

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
                            "options (see docs/distillation.md#recipes)") from None
    if data is None:
        data = {}
    check_depth(data, where)
    if isinstance(data, dict) and set(data) == {"distill"}:
        data = data["distill"] or {}
    return from_mapping(DistillConfig, data, where)


def load(path: str | Path) -> DistillConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise CompressError(f"recipe {p} not found; check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CompressError(f"cannot read recipe {p} ({type(e).__name__}); give a YAML text file") from None
    return parse(text, str(p))


def dump(cfg: DistillConfig) -> str:
    """The recipe that reproduces `cfg` (what a run writes next to its checkpoints)."""
    import yaml

    data: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        data[f.name] = list(v) if isinstance(v, tuple) else v
    return yaml.safe_dump(data, sort_keys=False)
