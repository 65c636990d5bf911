"""The onnxruntime-web bundle: a servable folder whose page shows PyTorch's prediction, nothing from a CDN."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compressor import models
from compressor.core import chromium
from compressor.core.artifact import require_parity
from exporters import bundle, onnx_web
from exporters.base import ExportJob, ExportOptions

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    torch.manual_seed(0)
    model = models.DigitsMLP().eval()
    x = np.random.default_rng(1).standard_normal((16, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    job = ExportJob(model=model, example=torch.zeros(1, 1, 8, 8), inputs=x, reference=ref, calib=x,
                    workdir=tmp_path_factory.mktemp("ortweb"), options=ExportOptions(bundle="site"))
    arts = {a.name: a for a in onnx_web.export(job)}
    return job, arts


def test_model_parity_in_chromium(made):
    job, arts = made
    a = arts["onnx-web:float32"]
    a.parity = onnx_web.validate(a, job)
    require_parity(a)
    assert "onnxruntime-web" in a.parity.runtime and a.parity.max_abs_diff < 1e-4


def test_served_bundle_page_shows_pytorchs_prediction(made):
    job, arts = made
    web = arts["web-bundle:ort"]
    assert web.path == job.workdir / "site"
    requested = []
    with chromium.serve(web.path) as url, chromium.chromium() as b:
        page = b.new_page()
        page.on("request", lambda r: requested.append(r.url))
        page.goto(url + "index.html")
        page.wait_for_function("document.body.dataset.done === '1'", timeout=60_000)
        result = page.evaluate("window.result")
        text = page.inner_text("#status")
    assert "error" not in result, result
    assert result["top1"] == int(job.reference[0].argmax()) and result["matches"]
    np.testing.assert_allclose(result["output"], job.reference[0], atol=1e-4)
    assert f"class {result['top1']}" in text and " ms" in text
    assert result["crossOriginIsolated"] is True
    assert all(u.startswith((url, "blob:", "data:")) for u in requested)  # nothing from a CDN


def test_bundle_contents_and_manifest(made):
    job, arts = made
    web = arts["web-bundle:ort"]
    web.parity = onnx_web.validate(web, job)  # the page check, which also completes manifest.json
    require_parity(web)
    names = {f["path"] for f in web.extra["files"]}
    assert {"index.html", "model.js", "model.d.ts", "README.md", "manifest.json", "example.json",
            "model/model.onnx", "runtime/ort.wasm.min.js", "runtime/ort-wasm-simd-threaded.mjs",
            "runtime/ort-wasm-simd-threaded.wasm"} == names
    assert 0 < web.extra["bundle_gzip_bytes"] < web.extra["bundle_bytes"]
    m = json.loads((web.path / "manifest.json").read_text())
    assert m["page_check"]["top1"] == m["page_check"]["expected_top1"] and m["files"]
    readme = (web.path / "README.md").read_text()
    assert "Cross-Origin-Opener-Policy: same-origin" in readme and "require-corp" in readme
    assert "export declare function predict" in (web.path / "model.d.ts").read_text()


def test_run_inputs_reports_a_broken_model(made, tmp_path):
    import shutil

    from compressor.core.errors import CompressError

    job, arts = made
    broken = tmp_path / "broken"
    shutil.copytree(arts["web-bundle:ort"].path, broken)
    (broken / "model" / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(CompressError, match="Chromium"):
        bundle.run_inputs(broken, job.inputs[:2])
