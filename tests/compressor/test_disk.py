"""Disk full and read-only output folders, on real (tmpfs) file systems where the machine allows mounting."""
import contextlib
import subprocess

import pytest

from tests.conftest import run_cli


@contextlib.contextmanager
def tmpfs(path, options):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_disk_full(teacher_files, tmp_path):
    with tmpfs(tmp_path / "small", "size=96k") as small:
        r = run_cli(teacher_files["torchscript"], "--out", small / "out")
        assert r.returncode == 2
        assert r.stderr.strip().splitlines()[-1].startswith("error: the disk is full"), r.stderr
        assert list(small.iterdir()) == []  # no half-written output, no temp folder, no lock


def test_read_only_folder(teacher_files, tmp_path):
    with tmpfs(tmp_path / "ro", "ro") as ro:
        r = run_cli(teacher_files["torchscript"], "--out", ro / "out")
        assert r.returncode == 2
        assert "cannot write" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
