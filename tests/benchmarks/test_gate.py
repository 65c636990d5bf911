"""The gate's behaviour, shown on real runs (no timing is asserted): A/A passes, a slowed model fails.

`slow` is the same model with 160 links in its MatMul chain instead of 4: about 40x the arithmetic,
a known added cost far beyond any threshold and any noise of a shared machine.
"""
import json
import shutil

import pytest

from benchmarks import gate
from benchmarks.cli import main
from compressor.core.errors import CompressError

QUICK = ["--bounds", "quick", "--targets", "cpu"]
# five fresh processes per row: the gate then tests per-process medians (the independent unit)
GATED = ["--bounds", "quick", "--only", "onnxruntime-1t", "--repeats", "5"]
# The test model runs in ~15 us, where a fresh process lands in speed modes up to 2x apart (best of 5 processes:
# 11.6-18.6 us over 6 runs here), so A/A uses a 100% budget; `slow` is ~40x. The gate's false-alarm and
# detection rates at a realistic size are benchmarks/gate_rates.py's to measure, not a test's.
BUDGET = ["--fail-slower", "100%"]


@pytest.fixture(scope="module")
def baseline(models, tmp_path_factory):
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    assert main([str(models["base"]), *GATED, "--save", str(path)]) == 0
    return path


def test_baseline_holds_samples_machine_and_commit(baseline):
    d = json.loads(baseline.read_text())
    assert d["kind"] == "edge-compress bench" and d["machine"]["commit"]
    assert d["machine"]["cpu"]["usable_cores"] >= 1 and d["machine"]["matmul_gflops"]["1_thread"] > 0
    (row,) = d["rows"]
    assert row["setting"] == "onnxruntime-1t" and row["counted"] and len(row["process_medians_ms"]) == 5
    assert d["artifacts"][0]["gzip_bytes"] < d["artifacts"][0]["size_bytes"]
    assert d["artifacts"][0]["macs"] == 4 * 128 * 128 + 128 * 10


def test_aa_compare_does_not_fail(models, baseline, capsys):
    assert main([str(models["base"]), *GATED, "--compare", str(baseline), *BUDGET]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "gate passed" in err and "per-process" in err


def test_slowed_down_artifact_fails_compare(models, baseline, tmp_path, capsys):
    assert main([str(models["slow"]), *GATED, "--compare", str(baseline), *BUDGET]) == 1
    err = capsys.readouterr().err
    assert "FAIL" in err and "best fresh process" in err


def test_size_budget(models, baseline):
    # slow's file is ~40x larger: fails --fail-larger alone, with no latency threshold given
    only = ["--bounds", "quick", "--only", "onnxruntime-1t"]
    assert main([str(models["slow"]), *only, "--compare", str(baseline), "--fail-larger", "5%"]) == 1
    assert main([str(models["base"]), *only, "--compare", str(baseline), "--fail-larger", "5%"]) == 0


@pytest.mark.heavy
@pytest.mark.slow  # 2 x 10 fresh processes
def test_ab_interleaved_aa_passes_and_slowed_fails(models, tmp_path):
    a, b = str(models["base"]), str(models["slow"])
    ab = ["--ab", "--bounds", "quick", "--only", "onnxruntime-1t", "--rounds", "5", *BUDGET]
    assert main([*ab[:1], a, a, *ab[1:]]) == 0
    out = tmp_path / "ab.json"
    assert main([*ab[:1], a, b, *ab[1:], "--save", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert doc["gate"]["failed"] and all(r["ratio"] > 5 for r in doc["gate"]["latency"])
    assert all(r["observations"] == [5, 5] and "per-process" in r["test"] for r in doc["gate"]["latency"])


def test_accuracy_budget_against_baseline():
    base = {"kind": "edge-compress bench", "rows": [], "artifacts": [{"name": "x", "size_bytes": 10, "accuracy": 0.98}]}
    cur = {"rows": [], "artifacts": [{"name": "x", "size_bytes": 10, "accuracy": 0.965}]}
    assert gate.compare(base, cur, gate.Budget(max_accuracy_drop=1.0)).failed  # 1.5 points lost
    assert not gate.compare(base, cur, gate.Budget(max_accuracy_drop=2.0)).failed


def test_bad_inputs_are_one_line_errors(models, tmp_path):
    with pytest.raises(CompressError, match="percentage"):
        gate.parse_percent("ten", "--fail-slower")
    not_bench = tmp_path / "x.json"
    not_bench.write_text("{}")
    with pytest.raises(CompressError, match="not a bench result"):
        main([str(models["base"]), "--compare", str(not_bench)])
    with pytest.raises(CompressError, match="unknown device"):
        main([str(models["base"]), "--targets", "mobile", "--device", "nokia-3310"])
    with pytest.raises(CompressError, match="unknown setting"):
        main([str(models["base"]), "--only", "onnxruntime-64t"])
    with pytest.raises(CompressError, match="unknown bench target"):
        main([str(models["base"]), "--targets", "gpu"])
    shutil.copy(models["base"], tmp_path / "m.txt")
    with pytest.raises(CompressError, match="not an artifact"):
        main([str(tmp_path / "m.txt")])


def test_a_row_that_ran_in_the_baseline_and_now_breaks_fails_the_gate():
    ok = {"artifact": "x", "setting": "s", "counted": True, "samples_ms": [1.0, 1.1, 0.9]}  # one process
    base = {"rows": [ok], "artifacts": []}
    cur = {"rows": [{"artifact": "x", "setting": "s", "counted": False, "error": "worker exited 1"}],
           "artifacts": []}
    g = gate.compare(base, cur, gate.Budget(fail_slower=0.1))
    assert g.failed and "worker exited 1" in g.broken[0]
    assert not gate.compare(base, {"rows": [], "artifacts": []}, gate.Budget(fail_slower=0.1)).failed


def test_only_one_thread_rows_are_gated_unless_asked():
    base = {"samples_ms": [1.0] * 6, "process_p25_ms": [1.0] * 6, "threads": 2}
    cur = {"samples_ms": [2.0] * 6, "process_p25_ms": [2.0] * 6, "threads": 2}
    row = gate.latency_row(("m", "onnxruntime-2t"), base, cur, gate.Budget(fail_slower=0.1))
    assert row["ratio"] == 2.0 and not row["failed"] and not row["gated"] and "--gate-all-cores" in row["test"]
    row = gate.latency_row(("m", "onnxruntime-2t"), base, cur, gate.Budget(fail_slower=0.1, all_cores=True))
    assert row["failed"] and row["gated"]
    one = [{**r, "threads": 1} for r in (base, cur)]
    assert gate.latency_row(("m", "onnxruntime-1t"), *one, gate.Budget(fail_slower=0.1))["failed"]
