import json
import subprocess
import sys

import pytest

from tests.conftest import run_cli


def test_import_and_help_stay_light():
    """`import compressor` and `compress --help` must not pull torch, tensorflow or onnxruntime."""
    code = ("import sys, contextlib, io\n"
            "import compressor, exporters, benchmarks\n"
            "from compressor import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: cli.main(['--help'])\n"
            "    except SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'tensorflow', 'onnxruntime', 'onnx', 'playwright') if m in sys.modules]\n"
            "print(','.join(heavy))")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_the_command_runs_exit_handlers_and_keeps_the_exit_status(tmp_path):
    """compress's quick exit (cli.entry) skips the interpreter's teardown, not atexit handlers or the status."""
    code = ("import atexit, sys\n"
            "from compressor import cli\n"
            "atexit.register(lambda: print('handler ran', flush=True))\n"
            "sys.argv = ['compress'] + sys.argv[1:]\n"
            "cli.entry()\n")
    ok = subprocess.run([sys.executable, "-c", code, "--version"], check=False, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "handler ran" in ok.stdout and "compress 0." in ok.stdout
    bad = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing.pt")], check=False, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "handler ran" in bad.stdout and "error" in bad.stderr


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0 and "compress demo" in r.stdout and "--target" in r.stdout


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "out"
    r = run_cli("demo", "--out", out)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    [a] = m["artifacts"]
    assert a["format"] == "onnx" and a["parity"]["passed"] and a["size_bytes"] == (out / a["path"]).stat().st_size
    assert len(a["sha256"]) == 64 and a["inputs"][0]["dtype"] == "float32" and m["tools"]["torch"].startswith("2.13")
    assert m["teacher"]["test_accuracy"] > 0.95
    assert "artifacts in" in r.stderr  # the summary table


@pytest.mark.slow
@pytest.mark.parametrize("fmt, extra", [("torchscript", []), ("pt2", []),
                                        ("state_dict", ["--arch", "compressor.models:DigitsCNN"]),
                                        ("pickle", ["--trust-model"])])
def test_each_model_format_end_to_end(teacher_files, tmp_path, fmt, extra):
    out = tmp_path / "out"
    r = run_cli(teacher_files[fmt], "--target", "onnx", "--out", out, *extra)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["artifacts"][0]["parity"]["passed"] and m["teacher"]["format"] in (fmt, "torch-export")


@pytest.mark.parametrize("args, msg", [
    (["missing.pt"], "not found"),
    (["{sd}"], "--arch"),
    (["{pickle}"], "--trust-model"),
    (["{ts}", "--input-shape", "1,3,32,32"], "--data digits (the default, the demo's 8x8 digits) does not fit"),
    (["{ts}", "--input-shape", "1,x"], "--input-shape"),
    (["{ts}", "--target", "coreml"], "unknown target 'coreml'; choose one of"),
    (["{ts}", "--data", "/nonexistent"], "not found"),
])
def test_bad_input_one_line_error_and_no_output(teacher_files, tmp_path, args, msg):
    names = {"sd": teacher_files["state_dict"], "pickle": teacher_files["pickle"], "ts": teacher_files["torchscript"]}
    args = [a.format(**names) for a in args]
    out = tmp_path / "out"
    r = run_cli(*args, "--out", out)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a lock or temp folder


def test_existing_output_needs_overwrite(teacher_files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    r = run_cli(teacher_files["torchscript"], "--out", out)
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (out / "keep.txt").read_text() == "keep"


def test_nan_outputs_on_data_are_an_error(tmp_path):
    import torch

    class NaNOnData(torch.nn.Module):
        def forward(self, x):
            return torch.sqrt(-x).flatten(1)[:, :10]  # finite on zeros, NaN on real images

    p = tmp_path / "nan.pt"
    torch.jit.save(torch.jit.script(NaNOnData()), str(p))
    r = run_cli(p, "--input-shape", "1,1,8,8", "--out", tmp_path / "out")
    assert r.returncode == 2 and "NaN or Inf on the held-out data" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, msg", [
    (["--student", "auto", "--method", "foo"], "unknown distillation method 'foo'; choose one of: labels, kd"),
    (["--quantize", "foo"], "unknown quantization 'foo'; choose one of: int8, fp16, dynamic, qat"),
    (["--bench", "cpu", "--bench-device", "foo"], "unknown device 'foo'; choose one of: pixel-7"),
    (["--bench", "gpu"], "unknown bench target 'gpu'; choose one of: cpu, mobile, browser"),
    (["--variants", "float33"], "unknown TFLite variant 'float33'; choose one of: float32"),
])
def test_unknown_names_list_the_valid_ones(tmp_path, args, msg):
    r = run_cli("demo", *args, "--out", tmp_path / "out")
    assert r.returncode == 2 and msg in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
