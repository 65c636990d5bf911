"""The command line of issue 16: subcommands, one-line usage errors, --version, --json, recipes of every option."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

from compressor.cli import config_from_args, run_parser
from compressor.core.errors import CompressError
from tests.conftest import ROOT, run_cli


@pytest.mark.parametrize("args, fragment, see", [
    (["--bogus"], "unrecognized arguments: --bogus", "compress"),
    (["model.pt", "--bogus"], "unrecognized arguments: --bogus", "compress"),
    (["export", "model.pt", "--bogus"], "unrecognized arguments: --bogus", "compress export"),
    (["demo", "--calib"], "argument --calib: expected one argument", "compress demo"),
    (["demo", "--calib", "x"], "argument --calib: invalid int value: 'x'", "compress demo"),
    (["exprt", "model.pt"], "unknown command 'exprt'; choose one of: export, demo, teacher, bench", "compress"),
    (["bench", "--nope"], "unrecognized arguments: --nope", "compress bench"),
    (["bench", "out", "--rounds"], "argument --rounds: expected one argument", "compress bench"),
    (["teacher"], "the following arguments are required: file", "compress teacher"),
    (["export"], "give a model file", "compress"),
    ([], "give a model file or a command (export, demo, teacher, bench)", "compress"),
])
def test_usage_errors_are_one_line(tmp_path, args, fragment, see):
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    line = r.stderr.strip()
    assert line.startswith("error: ") and fragment in line and line.endswith(f"; see {see} --help"), line
    assert list(tmp_path.iterdir()) == []


def test_json_usage_error_on_stdout(tmp_path):
    r = run_cli("--json", "demo", "--calib", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert json.loads(r.stdout) == {"error": "argument --calib: expected one argument; see compress demo --help",
                                    "exit_code": 2}
    r = run_cli("demo", "--target", "nope", "--json", cwd=tmp_path)  # a bad option: the same form
    doc = json.loads(r.stdout)
    assert r.returncode == doc["exit_code"] == 2 and doc["error"].startswith("unknown target 'nope'")


def test_help_is_still_the_full_help():
    r = run_cli("--help")
    assert r.returncode == 0 and "compress demo" in r.stdout and "--max-accuracy-drop" in r.stdout
    assert "--print-recipe" in r.stdout and "exit status: 0 done; 1 bench" in r.stdout
    for sub in ("export", "demo", "bench", "teacher"):
        r = run_cli(sub, "--help")
        assert r.returncode == 0 and r.stdout.startswith(f"usage: compress {sub}"), sub


def test_export_subcommand_and_bare_model_parse_alike(tmp_path):
    """`compress export model.pt` is no longer read as two teachers."""
    for args in (["export", "missing.pt"], ["missing.pt"]):
        r = run_cli(*args, "--out", tmp_path / "o")
        assert r.returncode == 2 and "missing.pt" in r.stderr and "not found" in r.stderr, r.stderr
    r = run_cli("export", "a.pt", "b.pt", "--out", tmp_path / "o")
    assert "several teachers only apply to distillation" in r.stderr  # two model files: still an ensemble


def test_version_lists_the_libraries_without_importing_them():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stderr == ""
    lines = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    import compressor

    assert lines["compress"] == compressor.__version__ and lines["torch"] == metadata.version("torch")
    assert lines["onnxruntime"] == metadata.version("onnxruntime") and lines["onnx"] == metadata.version("onnx")
    assert {"tensorflow", "tensorflowjs", "python"} <= set(lines)
    if (ROOT / ".venv-tfjs").exists():
        assert lines["tensorflowjs"].startswith("4.") and ".venv-tfjs" in lines["tensorflowjs"]
    doc = json.loads(run_cli("--version", "--json").stdout)
    assert doc["torch"] == lines["torch"] and "tensorflowjs" in doc
    code = ("import sys, contextlib, io\nfrom compressor import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    cli.main(['--version'])\n"
            "print([m for m in ('torch', 'tensorflow', 'onnxruntime', 'onnx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def flags_config(*argv: str, model: str = "demo"):
    return config_from_args(run_parser().parse_args([model, *argv]), model)


def test_a_recipe_gives_the_config_of_its_flags(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("targets: [onnx, tflite]\nquantize: int8\ncalib_method: entropy\ncalib: 64\nbench: cpu\n"
                 "bench_bounds: quick\nvariants: float32,int8\nmax_accuracy_drop: 0.5\nseed: 4\nparity_samples: 50\n"
                 "input_shape: [1, 1, 8, 8]\nstudent: auto\nepochs: 2\nmethods: [kd, dkd]\n")
    from_flags = flags_config("--target", "onnx,tflite", "--quantize", "int8", "--calib-method", "entropy",
                              "--calib", "64", "--bench", "cpu", "--bench-bounds", "quick", "--variants",
                              "float32,int8", "--max-accuracy-drop", "0.5", "--seed", "4", "--parity-samples", "50",
                              "--input-shape", "1,1,8,8", "--student", "auto", "--epochs", "2", "--method", "kd,dkd")
    assert flags_config("--recipe", str(f)) == from_flags
    assert from_flags.quantize.calib_method == "entropy" and from_flags.quantize.calib_samples == 64
    assert from_flags.distill.seed == 4 and from_flags.export.max_accuracy_drop == 0.5


def test_typed_flags_override_the_recipe(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("targets: tflite\nbench: [cpu]\nquantize: {calib_samples: 300, per_channel: false}\ncalib: 100\n")
    cfg = flags_config("--recipe", str(f))
    assert cfg.targets == ("tflite",) and cfg.quantize.calib_samples == 300 and not cfg.quantize.per_channel
    assert cfg.export.calib_samples == 100  # the mapping's field wins for the quantizer, `calib` is the exporters'
    cfg = flags_config("--recipe", str(f), "--target", "onnx", "--calib", "50", "--bench", "")
    assert cfg.targets == ("onnx",) and cfg.bench == () and cfg.quantize.calib_samples == 50
    assert cfg.export.calib_samples == 50 and not cfg.quantize.per_channel
    assert flags_config("--recipe", str(f), "--quantize", "fp16").quantize.__class__.__name__ == "Fp16"
    assert cfg.distill is None  # no distillation keys: none
    with pytest.raises(CompressError, match="--epochs only apply to distillation"):
        flags_config("--recipe", str(f), "--epochs", "3")


@pytest.mark.parametrize("text, fragment", [
    ("colour: red\n", "r.yaml: unknown option(s) colour; known: targets, data"),
    ("model: m.pt\nout: o\n", "r.yaml: model, out cannot be in a recipe"),
    ("trust_model: true\n", "trust_model cannot be in a recipe"),
    ("targets: [coreml]\n", "r.yaml: unknown target 'coreml'"),
    ("quantize: int3\n", "r.yaml: unknown quantization 'int3'"),
    ("quantize: [int8]\n", "quantize: expected a name"),
    ("quantize: {calib_method: mse}\n", "r.yaml.quantize: unknown calibration method 'mse'"),
    ("quantize: {mode: qat, calib_samples: 3}\n", "r.yaml.quantize: unknown option(s) calib_samples"),
    ("calib: many\n", "r.yaml.calib: expected int"),
    ("bench: [gpu]\n", "unknown bench target 'gpu'"),
    ("epochs: 3\ndistill: {lr: 0.1}\n", "both at the top (epochs) and under distill:"),
    ("layout: !!python/object/apply:os.system ['echo pwned']\n", "would build a Python object"),
])
def test_bad_recipes_are_one_line_errors(tmp_path, text, fragment, capfd):
    f = tmp_path / "r.yaml"
    f.write_text(text)
    with pytest.raises(CompressError) as e:
        flags_config("--recipe", str(f))
    assert fragment in str(e.value) and "\n" not in str(e.value)
    assert "pwned" not in capfd.readouterr().out


@pytest.mark.parametrize("argv", [
    [],
    ["--target", "all", "--quantize", "qat", "--seed", "9", "--bundle", "site", "--tfjs-quant", "uint8"],
    ["--quantize", "int8", "--calib-method", "percentile", "--max-accuracy-drop", "2", "--layout", "nhwc"],
    ["--student", "auto", "--method", "kd:1,dkd:0.5,hint:1", "--hint", "features.0:features.0", "--bench", "cpu,mobile",
     "--bench-device", "moto-g4", "--data", "imgs/"],
])
def test_the_printed_recipe_gives_the_same_config(tmp_path, argv):
    from compressor import recipe

    cfg = flags_config(*argv, "--out", "o", model="t.pt")
    (tmp_path / "recipe.yaml").write_text(recipe.dump(cfg))
    again = flags_config("--recipe", str(tmp_path / "recipe.yaml"), "--out", "o", model="t.pt")
    assert again == cfg
    assert recipe.dump(again) == recipe.dump(cfg)
    assert recipe.run_config(tmp_path / "recipe.yaml", model="t.pt", out="o") == cfg  # the Python form


def test_quantize_in_a_recipe_as_docs_quantization_shows(tmp_path):
    from compressor.quantize import StaticInt8

    f = tmp_path / "r.yaml"
    f.write_text("quantize: int8\n")
    assert flags_config("--recipe", str(f)).quantize == StaticInt8()
    f.write_text("quantize:\n  calib_method: entropy\n  max_float_layers: 1\n")
    assert flags_config("--recipe", str(f)).quantize == StaticInt8(calib_method="entropy", max_float_layers=1)


def manifest_rows(folder):
    m = json.loads((folder / "manifest.json").read_text())
    return [(a["name"], a["size_bytes"], a.get("accuracy")) for a in m["artifacts"]], m


@pytest.mark.slow
def test_json_prints_the_manifest_and_the_bench_verdict(tmp_path):
    out = tmp_path / "o"
    r = run_cli("demo", "--target", "onnx", "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (out / "manifest.json").read_text()  # exactly the file written
    assert json.loads(r.stdout)["artifacts"][0]["name"] == "onnx:float32"
    assert "artifacts in" in r.stderr  # the summary table went to stderr
    r = run_cli("bench", out, "--targets", "cpu", "--bounds", "quick", "--only", "onnxruntime-1t", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["gate"]["failed"] is False and doc == json.loads((out / "bench.json").read_text())
    assert "| onnx:float32" in r.stderr  # the table: on stderr with --json


@pytest.mark.slow
def test_json_error_of_a_failed_run_carries_its_exit_code(tmp_path, capsys, monkeypatch):
    from compressor import cli
    from compressor.core import parity

    monkeypatch.setitem(parity.RULES, ("onnx", "float32", "logits"), parity.Rule(0.0, 1.0))  # nothing can pass
    assert cli.main(["demo", "--target", "onnx", "--out", str(tmp_path / "o"), "--json"]) == 3
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["exit_code"] == 3 and "parity check failed for onnx:float32" in doc["error"]
    assert err.strip().splitlines()[-1] == f"error: {doc['error']}"


@pytest.mark.heavy
@pytest.mark.slow
def test_a_recipe_runs_the_same_job_as_its_flags(tmp_path):
    (tmp_path / "r.yaml").write_text("targets: [onnx]\nquantize: int8\nbench: [cpu]\nbench_bounds: quick\n")
    flags = run_cli("demo", "--target", "onnx", "--quantize", "int8", "--bench", "cpu", "--bench-bounds", "quick",
                    "--out", tmp_path / "a", "--print-recipe")
    assert flags.returncode == 0, flags.stderr
    recipe = run_cli("demo", "--recipe", tmp_path / "r.yaml", "--out", tmp_path / "b", "--print-recipe")
    assert recipe.returncode == 0, recipe.stderr
    (rows_a, a), (rows_b, b) = manifest_rows(tmp_path / "a"), manifest_rows(tmp_path / "b")
    assert rows_a == rows_b and [x[0] for x in rows_a] == ["onnx:float32", "onnx:int8"]
    assert a["quantization"]["config"] == b["quantization"]["config"] and a["bench"]["targets"] == ["cpu"]
    assert [(r["artifact"], r["setting"]) for r in a["bench"]["rows"]] == \
        [(r["artifact"], r["setting"]) for r in b["bench"]["rows"]]  # timed the same way (timings aside)
    # the effective recipes are the same, and each was printed on stdout as written
    assert flags.stdout == (tmp_path / "a" / "recipe.yaml").read_text() == (tmp_path / "b" / "recipe.yaml").read_text()


@pytest.mark.heavy
@pytest.mark.slow
def test_print_recipe_round_trips(tmp_path):
    first = run_cli("demo", "--target", "onnx", "--seed", "3", "--parity-samples", "100", "--out", tmp_path / "a",
                    "--print-recipe")
    assert first.returncode == 0, first.stderr
    again = run_cli("demo", "--recipe", tmp_path / "a" / "recipe.yaml", "--out", tmp_path / "b", "--print-recipe")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and "seed: 3" in first.stdout and "parity_samples: 100" in first.stdout
    (rows_a, a), (rows_b, b) = manifest_rows(tmp_path / "a"), manifest_rows(tmp_path / "b")
    assert rows_a == rows_b and a["artifacts"][0]["parity"]["n_samples"] == b["artifacts"][0]["parity"]["n_samples"] == 100
