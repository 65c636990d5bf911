"""The "report" step: manifest.json, with every artifact and the sections the other steps wrote."""
from __future__ import annotations

from .. import manifest
from .state import State


def report(s: State) -> None:
    m = manifest.build(s.artifacts, s.workdir, **s.sections, step_seconds=s.seconds)
    manifest.write(m, s.workdir / "manifest.json")
    s.sections["manifest"] = m
