"""The layers point one way (docs/architecture.md), checked on the source's import statements:

    compressor.pipeline / cli -> compressor.steps -> (compressor.distill, compressor.quantize, benchmarks)
        -> exporters -> compressor.core (errors, registry, checks, artifact, parity, budget, files, chromium,
           provenance)
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compressor", "exporters", "benchmarks")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Every module -> the project modules it imports (at any level, function-level imports included)."""
    edges: dict[str, set[str]] = {}
    for name, f in mods.items():
        is_pkg = f.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    found.add(t)
        edges[name] = found
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


MODS = modules()
EDGES = imports(MODS)


def test_no_import_circle_between_folders():
    crossing = [c for c in cycles(EDGES) if len({MODS[m].parent for m in c}) > 1]
    assert crossing == []


def test_the_walker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "compressor.core.errors" in EDGES["exporters.base"]  # relative and absolute imports both resolved


def _above(prefixes: tuple[str, ...], allowed: tuple[str, ...]) -> list[tuple[str, str]]:
    return sorted((m, t) for m, ts in EDGES.items() if m.startswith(prefixes) for t in ts
                  if not t.startswith(allowed))


def test_common_base_imports_nothing_above_it():
    assert _above(("compressor.core",), ("compressor.core",)) == []


def test_exporters_import_only_the_common_base():
    assert _above(("exporters",), ("exporters", "compressor.core")) == []


def test_benchmarks_import_only_exporters_and_the_base():
    assert _above(("benchmarks",), ("benchmarks", "exporters", "compressor.core")) == []


def test_libraries_below_the_steps_do_not_import_steps_or_pipeline():
    libs = ("compressor.distill", "compressor.quantize", "compressor.core", "exporters", "benchmarks")
    bad = [(m, t) for m, ts in EDGES.items() if m.startswith(libs) for t in ts
           if t.startswith(("compressor.steps", "compressor.pipeline", "compressor.cli"))]
    assert bad == []


def test_research_studies_are_not_in_the_wheel():
    text = (ROOT / "pyproject.toml").read_text()
    assert "studies" not in text.split("[tool.setuptools.packages.find]")[1].split("[")[0]
    assert not any(m.startswith("studies") for m in MODS)
