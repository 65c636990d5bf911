"""The wheel: what it installs, and that it works in a fresh virtualenv outside the checkout.

It installs three top-level packages, `compressor`, `exporters` and `benchmarks` (README "Set-up notes"
says why they are not under one namespace); nothing else of the repository (tests, studies).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the wheel is built from; copied, so that the build leaves nothing in the checkout (build/, egg-info).
SOURCES = ("pyproject.toml", "README.md", "compressor", "exporters", "benchmarks")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("wheel")
    (d / "src").mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, d / "src" / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, d / "src" / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(d / "dist"), str(d / "src")], check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = (d / "dist").glob("edge_compress-*.whl")
    return whl


def names(whl: Path) -> list[str]:
    with zipfile.ZipFile(whl) as z:
        return z.namelist()


def test_wheel_installs_exactly_the_three_packages(wheel):
    top = {n.split("/")[0] for n in names(wheel)} - {n.split("/")[0] for n in names(wheel) if ".dist-info/" in n}
    assert top == {"compressor", "exporters", "benchmarks"}


def test_wheel_carries_the_non_python_files_the_code_reads(wheel):
    files = set(names(wheel))
    templates = {f.relative_to(ROOT).as_posix() for f in (ROOT / "exporters/bundle/templates").iterdir()}
    web = {f.relative_to(ROOT).as_posix() for f in (ROOT / "benchmarks/web").iterdir()}
    assert templates and templates <= files
    assert web and web <= files
    assert "exporters/onnx/ort_web_run.mjs" in files


def test_wheel_metadata_declares_the_command_and_the_python_versions(wheel):
    with zipfile.ZipFile(wheel) as z:
        info = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = z.read(info).decode()
        entry = z.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "compress = compressor.cli:entry" in entry
    assert "Requires-Python: <3.12,>=3.11" in meta


def fresh_venv(folder: Path) -> Path:
    """A virtualenv whose dependencies are the checkout's .venv (a .pth line), so nothing is downloaded.

    Only the directory is added: .pth files inside it (the editable install's finder) are not run, so
    `compressor` can come from the installed wheel only.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    deps = Path(sysconfig.get_paths()["purelib"])
    site = next((folder / "lib").glob("python3*/site-packages"))
    (site / "edge-compress-deps.pth").write_text(f"{deps}\n")
    return folder / "bin"


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.tflite
def test_wheel_runs_the_demo_in_a_fresh_virtualenv_outside_the_checkout(wheel, tmp_path):
    bindir = fresh_venv(tmp_path / "venv")
    py = bindir / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                       check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    # The dependencies' console scripts (onnx2tf runs the `onnxsim` command) as a full install would have.
    env = {**os.environ, "HOME": str(tmp_path / "home"), "COMPRESS_COMMIT": "0123abc",
           "PATH": os.pathsep.join([str(bindir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    env.pop("COMPRESS_HOME", None)
    env.pop("PYTHONPATH", None)
    code = ("import compressor, exporters, benchmarks, compressor.core.chromium as c;"
            "print(compressor.__file__, exporters.__file__, benchmarks.__file__, c.home())")
    where = subprocess.run([str(py), "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=120,
                           check=True).stdout.split()
    assert all(p.startswith(str(tmp_path / "venv")) for p in where[:3]), where
    assert where[3] == str(tmp_path / "home" / ".local" / "share" / "edge-compress")

    r = subprocess.run([str(bindir / "compress"), "demo", "--target", "onnx,tflite", "--out", "X"], cwd=work,
                       env=env, check=False, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    manifest = json.loads((work / "X" / "manifest.json").read_text())
    assert {"onnx:float32", "tflite:float32"} <= {a["name"] for a in manifest["artifacts"]}
    assert manifest["commit"] == "0123abc"  # no checkout here: the setting the Dockerfile uses

    # With COMPRESS_HOME set, the installed package finds the browser runtimes there (here: the checkout's).
    env["COMPRESS_HOME"] = str(ROOT)
    code = ("import sys, pathlib; from compressor.core import chromium;"
            "print(len(chromium.copy_runtime('ort', pathlib.Path(sys.argv[1]))))")
    r = subprocess.run([str(py), "-c", code, str(tmp_path / "ort")], cwd=work, env=env, check=False,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "3", r.stdout + r.stderr
