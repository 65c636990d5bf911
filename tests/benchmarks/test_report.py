import json

import pytest

from benchmarks import report
from benchmarks.cli import main


@pytest.fixture(scope="module")
def report_dir(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main([str(models["base"]), str(models["slow"]), "--bounds", "quick", "--targets", "cpu",
                 "--report", str(out)]) == 0
    return out


def test_report_files_hold_tables_and_plots(report_dir):
    md = (report_dir / "report.md").read_text()
    assert "| onnx:model | cpu | onnxruntime-1t |" in md and "## Machine" in md and "best process" in md
    assert (report_dir / "bench-latency.png").read_bytes()[:4] == b"\x89PNG"
    html = (report_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and "src='http" not in html and 'src="http' not in html
    result = json.loads((report_dir / "bench.json").read_text())
    assert report.markdown_table(result).count("\n") == len(result["rows"]) + 1


@pytest.mark.browser
def test_report_html_renders_in_chromium(report_dir):
    from compressor.core.chromium import chromium

    with chromium() as b:
        page = b.new_page()
        page.goto((report_dir / "report.html").as_uri())
        tables = page.evaluate("Array.from(document.querySelectorAll('table')).map(t => t.rows.length)")
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        text = page.inner_text("body")
    assert len(tables) >= 2 and all(n >= 2 for n in tables)
    assert images and all(ok and w > 100 for ok, w in images)
    assert "onnxruntime-1t" in text and "Latency per artifact and target" in text


@pytest.mark.heavy
@pytest.mark.slow
def test_pipeline_bench_step_writes_report(tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "out"
    p = run_cli("demo", "--target", "onnx", "--bench", "cpu", "--bench-bounds", "quick", "--out", out)
    assert p.returncode == 0, p.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    settings = {r["setting"] for r in m["bench"]["rows"]}
    assert {"onnxruntime-1t", "torch-1t"} <= settings and all(r["counted"] for r in m["bench"]["rows"])
    assert (out / "report.html").exists() and (out / "report.md").exists()
    result = json.loads((out / "bench.json").read_text())
    assert result["parity_reference"].startswith("pytorch") and result["teacher"]["parameters"] > 0


def test_report_draws_the_distillation_curve(report_dir, tmp_path):
    """A pipeline run with --student and --bench hands the manifest's distillation section to the report."""
    result = json.loads((report_dir / "bench.json").read_text())
    hist = [{"epoch": e, "loss": 1.0 / (e + 1), "val": 0.8 + 0.05 * e, "seconds": 0.1} for e in range(3)]
    result["distillation"] = {"device": "cpu", "precision": "bf16", "batch_size": 32, "grad_accum": 2,
                              "distributed_world_size": 1, "threads": 2, "lr": 0.003, "epochs": 3,
                              "stages": [{"name": "student", "parameters": 1234, "epochs_run": 3, "best_epoch": 2,
                                          "val_score": 0.9, "seconds_per_epoch": 0.1, "steps_per_epoch": 6,
                                          "history": hist, "step_loss": [[s, 2.0 / s] for s in range(1, 19)]}]}
    paths = report.write(result, tmp_path)
    assert paths["distillation"].read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "report.md").read_text()
    assert "## Distillation" in md and "precision bf16, batch 32 x 2 accumulated = 64" in md
    assert "| student | 1,234 | 3 | 3 | 90.00% | 0.1 | 6 |" in md and "![distillation](distill-curve.png)" in md
    html = (tmp_path / "report.html").read_text()
    assert "<h2>Distillation</h2>" in html and html.count("data:image/png;base64,") == md.count("![")
    del result["distillation"]  # no student trained: no section, no curve
    (tmp_path / "plain").mkdir()
    paths = report.write(result, tmp_path / "plain")
    assert "distillation" not in paths and "Distillation" not in (tmp_path / "plain" / "report.md").read_text()
