"""benchmarks/gate_rates.py: the README's gate commands, run A/A and against a slowed copy, and both rates."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gate_rates

ROOT = Path(__file__).resolve().parents[2]


def test_the_script_runs_the_readme_commands_as_written():
    readme = (ROOT / "README.md").read_text()
    assert gate_rates.README_SAVE in readme and gate_rates.README_COMPARE in readme


def test_the_slower_model_computes_the_same_outputs(models, tmp_path):
    from exporters.onnx import run

    slow = tmp_path / "slow.onnx"
    gate_rates.slower_model(models["base"], slow, 3)
    x = np.random.default_rng(0).standard_normal((4, 128)).astype(np.float32)
    np.testing.assert_array_equal(run(slow, x), run(models["base"], x))
    assert slow.stat().st_size - models["base"].stat().st_size < 1000  # well inside --fail-larger 5%


@pytest.mark.slow  # the demo export, a calibration and three bench runs: about a minute
def test_tiny_run_prints_both_rates(tmp_path):
    p = subprocess.run([sys.executable, "-m", "benchmarks.gate_rates", "--runs", "1", "--quick",
                        "--keep", str(tmp_path / "work")], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert re.search(r"A/A false-positive rate: [01]/1 gates failed", p.stdout), p.stdout
    assert re.search(r"15% slowdown detection rate: [01]/1 gates failed", p.stdout), p.stdout
    assert "slower copy:" in p.stdout and "wall time:" in p.stdout and "load average" in p.stdout
