"""Browser bundles of big models: a TF.js model in many weight shards loads, limits scale with the model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from exporters import bundle


def test_page_limits_grow_with_the_model():
    assert bundle.page_timeout_ms(45) > 2 * bundle.page_timeout_ms(1) >= 120_000
    assert bundle.page_timeout_ms(45, runs=1) < bundle.page_timeout_ms(45, runs=11)


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.tflite
def test_a_tfjs_model_in_more_shards_than_http_connections_loads(tmp_path):
    """TF.js waits for every shard's response before reading any: with more than Chromium's 6
    connections per host, the model never loaded (ResNet-18: 11 shards) until model.js read each as it came."""
    from exporters import tfjs
    from exporters.base import ExportJob, ExportOptions

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 3584), nn.ReLU(),
                          nn.Linear(3584, 10)).eval()  # 30 MB of weights: 8 shards of the converter's 4 MB
    x = np.random.default_rng(0).standard_normal((6, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    job = ExportJob(model=model, example=torch.zeros(1, 1, 8, 8), inputs=x, reference=ref, calib=x,
                    workdir=tmp_path, options=ExportOptions(bundle="site"))
    arts = {a.name: a for a in tfjs.export(job)}
    assert len(list((tmp_path / "site" / "model").glob("*.bin"))) > 6
    out, info = bundle.run_inputs(tmp_path / "site", x)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert info["backend"] == "wasm" and 0 < info["first_ms"] and info["load_ms"] > 0
    assert bundle.page_result(arts["web-bundle:tfjs"].path)["matches"]  # index.html too
    # and the benchmark's own page (benchmarks/web/bench.js) loads it as well: it had the same deadlock
    from benchmarks import bench
    from benchmarks.discover import discover
    from benchmarks.harness import PRESETS
    from benchmarks.platforms import PlatformOptions

    items, _ = discover([tmp_path / "site" / "model"])
    opts = bench.BenchOptions(targets=("browser",), bounds=PRESETS["quick"], peak=False,
                              platform_options=PlatformOptions(browser_backends=("wasm",)))
    (row,) = bench.run(items, opts, reference=lambda xs: model(torch.from_numpy(xs)).detach().numpy())["rows"]
    assert row["counted"] and row["parity"]["max_abs_diff"] < 1e-3, row
