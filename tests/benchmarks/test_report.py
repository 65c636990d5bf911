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
    assert "| onnx:model | cpu | onnxruntime-1t |" in md and "## Machine" in md and "Mann-Whitney" in md
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
