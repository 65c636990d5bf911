"""Issue 13, case 13 and the bench tracebacks: the gate's inputs are checked before they are believed.

An output folder's files must match its manifest; a baseline must be a bench result of this schema,
and one from another machine is flagged; a baseline row this run does not measure (missing, NaN) fails.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from benchmarks import bench, gate
from benchmarks.cli import main
from compressor.core.errors import CompressError
from compressor.core.files import digest
from tests.conftest import run_cli

QUICK = ["--bounds", "quick", "--only", "onnxruntime-1t"]
CPU = {"model": "Test CPU", "arch": "x86_64", "logical_cores": 2, "usable_cores": 2}


def out_folder(path: Path, model: Path) -> Path:
    """An output folder as `compress` writes it: the artifact and a manifest with its size and sha256."""
    path.mkdir(parents=True)
    shutil.copy(model, path / "model.onnx")
    size, sha = digest(path / "model.onnx")
    man = {"schema": 1, "artifacts": [{"name": "onnx:float32", "path": "model.onnx", "format": "onnx",
                                        "variant": "float32", "size_bytes": size, "sha256": sha, "inputs": []}]}
    (path / "manifest.json").write_text(json.dumps(man))
    return path


def row(artifact: str = "x", setting: str = "s", samples=(1.0, 1.1, 0.9), counted: bool = True) -> dict:
    return {"artifact": artifact, "setting": setting, "counted": counted, "samples_ms": list(samples)}


def doc(*rows: dict, cpu: dict | None = None, settings: list[str] | None = None) -> dict:
    d = {"kind": "edge-compress bench", "schema": 1, "rows": list(rows), "artifacts": []}
    if cpu is not None:
        d["machine"] = {"cpu": cpu}
    if settings is not None:
        d["settings"] = settings
    return d


# --- the output folder against its manifest ---------------------------------------------------------------

def test_a_folder_whose_files_changed_is_refused_unless_accepted(models, tmp_path):
    folder = out_folder(tmp_path / "out", models["base"])
    assert main([str(folder), *QUICK]) == 0  # untouched: verified, benchmarked
    (folder / "bench.json").unlink()
    shutil.copy(models["slow"], folder / "model.onnx")  # another model under the manifest's name
    r = run_cli("bench", folder, *QUICK)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith(
        f"error: 1 artifact(s) in {folder} no longer match its manifest.json (model.onnx: sha256 ")
    assert "--accept-modified" in r.stderr and not (folder / "bench.json").exists()
    r = run_cli("bench", folder, *QUICK, "--accept-modified")
    assert r.returncode == 0 and "WARNING" in r.stderr and "differs from its manifest.json" in r.stderr
    result = json.loads((folder / "bench.json").read_text())
    (changed,) = result["modified_since_manifest"]
    assert changed["path"] == "model.onnx" and changed["sha256"] != changed["manifest_sha256"]
    assert result["artifacts"][0]["modified_since_manifest"] is True


def test_random_bytes_named_model_onnx_are_one_line(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(bytes(range(256)) * 40)
    folder = out_folder(tmp_path / "out", junk)  # a manifest that matches the junk: verification passes
    for args in ([folder, *QUICK], [folder / "model.onnx", *QUICK]):
        r = run_cli("bench", *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "model.onnx is not a readable" in r.stderr and "re-export it" in r.stderr


def test_a_manifest_cannot_point_outside_its_folder(models, tmp_path):
    folder = out_folder(tmp_path / "out", models["base"])
    man = json.loads((folder / "manifest.json").read_text())
    man["artifacts"][0]["path"] = "../elsewhere.onnx"
    (folder / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(CompressError, match="outside the folder"):
        main([str(folder), *QUICK])
    (folder / "manifest.json").write_text("[1, 2")
    with pytest.raises(CompressError, match="cannot read .*manifest.json"):
        main([str(folder), *QUICK])


# --- the baseline file ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ("[]", "is a JSON list, not a bench result"),
    ("3", "is a JSON int, not a bench result"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"kind": "edge-compress bench", "schema": 2, "rows": [], "artifacts": []}',
     "has bench.json schema 2, this version reads schema 1; record the baseline again"),
    ('{"kind": "edge-compress bench", "rows": [], "artifacts": []}', "schema None"),
    ('{"kind": "edge-compress bench", "schema": 1, "rows": [1], "artifacts": []}', "damaged rows"),
    ('{"kind": "edge-compress bench", "schema": 1, "rows": [], "artifacts": [{"name": "x"}]}', "damaged rows"),
    ("\xff\xfe", "cannot read baseline"),
    ('{"kind": "edge-compress bench", "schema": 1, "rows": [], "artifacts": [{"name": "x", "size_bytes": NaN}]}',
     "damaged rows"),
    (('{"kind": "edge-compress bench", "schema": 1, "rows": [], "artifacts": [{"name": "x", "size_bytes": 1, '
     '"accuracy": NaN}]}'), "damaged rows"),
])
def test_a_baseline_that_is_not_a_bench_result_is_one_line(tmp_path, text, fragment):
    path = tmp_path / "b.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(CompressError) as e:
        gate.load(path)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_a_list_baseline_on_the_command_line(models, tmp_path):
    (tmp_path / "b.json").write_text("[]")
    r = run_cli("bench", models["base"], *QUICK, "--compare", tmp_path / "b.json")
    assert r.returncode == 2 and r.stderr == f"error: baseline {tmp_path / 'b.json'} is a JSON list, not a bench " \
        "result; make one with `compress bench ... --save`\n"


# --- rows the gate must not skip --------------------------------------------------------------------------

def test_a_baseline_row_missing_from_this_run_fails_the_gate():
    base = doc(row("onnx:a"), row("onnx:int8"))
    g = gate.compare(base, doc(row("onnx:a"), settings=["s"]), gate.Budget(fail_slower=0.1))
    assert g.failed and [r["artifact"] for r in g.unmeasured] == ["onnx:int8"]
    assert g.unmeasured[0]["verdict"] == "missing" and "missing from this run" in g.broken[0]
    assert g.to_dict()["unmeasured"][0]["baseline_ms"] == pytest.approx(1.0)


def test_settings_left_out_on_purpose_are_noted_not_failed():
    base = doc(row("onnx:a", "onnxruntime-1t"), row("onnx:a", "litert-1t"))
    g = gate.compare(base, doc(row("onnx:a", "onnxruntime-1t"), settings=["onnxruntime-1t"]), gate.Budget())
    assert not g.failed and any("litert-1t: setting not measured" in n for n in g.notes)


@pytest.mark.parametrize("base_samples, cur_samples, verdict", [
    ([math.nan] * 3, [1.0, 1.1, 0.9], "NaN in baseline"),
    ([1.0, 1.1, 0.9], [1.0, math.nan, 0.9], "NaN samples"),
    ([1.0, 1.1, 0.9], [math.inf] * 3, "NaN samples"),
    ([], [1.0, 1.1, 0.9], "NaN in baseline"),
])
def test_nan_samples_fail_the_gate_instead_of_passing_it(base_samples, cur_samples, verdict):
    g = gate.compare(doc(row(samples=base_samples)), doc(row(samples=cur_samples)), gate.Budget(fail_slower=0.1))
    assert g.failed and not g.latency and g.unmeasured[0]["verdict"] == verdict


def test_hand_edited_samples_of_the_wrong_type_fail_instead_of_crashing():
    base = doc({**row(), "samples_ms": 5}, {**row("y"), "process_medians_ms": "fast"})
    g = gate.compare(base, doc(row(), row("y")), gate.Budget(fail_slower=0.1))
    assert [r["verdict"] for r in g.unmeasured] == ["NaN in baseline", "NaN in baseline"]


def test_a_nan_accuracy_fails_the_accuracy_budget():
    base = {**doc(), "artifacts": [{"name": "x", "size_bytes": 10, "accuracy": 0.98}]}
    cur = {"rows": [], "artifacts": [{"name": "x", "size_bytes": 10, "accuracy": math.nan}]}
    assert gate.compare(base, cur, gate.Budget(max_accuracy_drop=1.0)).failed


def test_a_nan_measurement_is_never_counted():
    from benchmarks.platforms import PlatformOptions, expand

    setting = next(s for s in expand(("cpu",), PlatformOptions()) if s.name == "onnxruntime-1t")
    it = bench.Item("onnx:a", Path("m.onnx"), "onnx", "float32", (1, 4), "float32")
    r = bench._row_from(setting, it, {"samples_ms": [1.0, math.nan]}, {}, None)
    assert r["counted"] is False and r["error"] == "1 of 2 timing samples are NaN or Inf"


def test_a_baseline_from_another_machine_is_flagged_loudly(capsys):
    from rich.console import Console

    other = {**CPU, "model": "Other CPU", "logical_cores": 64}
    g = gate.compare(doc(row(), cpu=other), doc(row(), cpu=CPU), gate.Budget(fail_slower=0.5))
    assert g.machine == ["CPU model: 'Other CPU' in the baseline, 'Test CPU' now",
                         "logical cores: 64 in the baseline, 2 now"]
    assert g.to_dict()["other_machine"] == g.machine and not g.failed
    gate.print_gate(g, Console(stderr=True, width=200))
    err = capsys.readouterr().err
    assert "WARNING: the baseline was measured on another machine" in err and "ANOTHER MACHINE" in err
    assert "gate passed (baseline from another machine)" in err
    assert gate.compare(doc(row(), cpu=CPU), doc(row(), cpu=CPU), gate.Budget()).machine == []


def test_fail_other_machine_refuses_before_any_timing(models, tmp_path, monkeypatch):
    from benchmarks.machine import cpu_info

    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc(cpu={**cpu_info(), "arch": "riscv64"})))  # this machine, but for its arch
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("timed before refusing"))
    with pytest.raises(CompressError, match=r"measured on another machine \(architecture: 'riscv64' in the "
                                            r"baseline, '[^']+' now\); record it on this machine type"):
        main([str(models["base"]), *QUICK, "--compare", str(path), "--fail-other-machine"])


def test_the_cli_fails_on_a_row_missing_from_this_run(models, tmp_path):
    base = tmp_path / "base.json"
    assert main([str(models["base"]), *QUICK, "--save", str(base)]) == 0
    d = json.loads(base.read_text())
    d["rows"].append({**d["rows"][0], "artifact": "onnx:int8"})
    base.write_text(json.dumps(d))
    r = run_cli("bench", models["base"], *QUICK, "--compare", base)
    err = " ".join(r.stderr.split())  # rich wraps at 80 columns without a terminal
    assert r.returncode == 1 and "onnx:int8 on onnxruntime-1t: counted in the baseline, now missing" in err
    assert "gate FAILED" in err


# --- float options ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, fragment", [
    (lambda: gate.Budget(fail_slower=math.nan), "--fail-slower nan must be a finite number >= 0"),
    (lambda: gate.Budget(fail_larger=math.inf), "--fail-larger inf must be a finite number"),
    (lambda: gate.Budget(max_accuracy_drop=math.nan), "--max-accuracy-drop nan must be a finite number"),
    (lambda: gate.parse_percent("nan%", "--fail-slower"), "--fail-slower nan% must be a finite percentage"),
    (lambda: gate.parse_percent("inf", "--fail-larger"), "--fail-larger inf must be a finite percentage"),
])
def test_bench_float_options_refuse_nan_and_inf(make, fragment):
    with pytest.raises(CompressError) as e:
        make()
    assert fragment in str(e.value)


@pytest.mark.parametrize("flag", ["--warmup-seconds", "--min-seconds", "--max-seconds"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_bench_bounds_refuse_nan_and_inf(models, flag, value):
    with pytest.raises(CompressError, match="seconds"):
        main([str(models["base"]), *QUICK, flag, value])
    with pytest.raises(CompressError, match="cpu-throttle"):
        main([str(models["base"]), "--targets", "mobile", "--cpu-throttle", value])

