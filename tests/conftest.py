"""Shared fixtures: a cache folder for the built-in teacher, tiny models, model files in every format."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# One cache for the whole test run (and later runs): the demo teacher is trained once.
os.environ.setdefault("COMPRESS_CACHE", str(ROOT / ".cache" / "test"))
# No conversion cache unless a test points it at its own tmp_path (tests/exporters/test_cache.py): a hit
# would skip the very conversions the tests check, and tests must never share converted files.
os.environ["COMPRESS_CONVERSION_CACHE"] = "off"


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test that sets torch's thread count (benchmark code does) must not change later tests' training:
    the summation order, and so the trained weights, depend on it."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def teacher_files(tmp_path_factory) -> dict[str, Path]:
    """The built-in teacher written in each of the four formats the loader accepts."""
    from compressor import demo

    d = tmp_path_factory.mktemp("teachers")
    model = demo.teacher().module
    files = {"torchscript": d / "teacher.pt", "pt2": d / "teacher.pt2", "state_dict": d / "teacher_sd.pt",
             "pickle": d / "teacher_pickled.pt"}
    for fmt, path in files.items():
        demo.save_as(model, path, fmt)
    return files


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`compress ARGS` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "compressor.cli", *map(str, args)], check=False, capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=timeout, env={**os.environ})
