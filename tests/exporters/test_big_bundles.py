"""Browser bundles of big models: a TF.js model in many weight shards loads, limits scale with the model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from exporters import bundle

SHARD = 1 << 20


def test_page_limits_grow_with_the_model():
    assert bundle.page_timeout_ms(45) > 2 * bundle.page_timeout_ms(1) >= 120_000
    assert bundle.page_timeout_ms(45, runs=1) < bundle.page_timeout_ms(45, runs=11)


def reshard(model_dir, size: int = SHARD) -> int:
    """Split a TF.js graph model's weights into shards of `size` bytes; returns their number."""
    spec = json.loads((model_dir / "model.json").read_text())
    (group,) = spec["weightsManifest"]
    data = b"".join((model_dir / p).read_bytes() for p in group["paths"])
    for p in group["paths"]:
        (model_dir / p).unlink()
    n = -(-len(data) // size)
    group["paths"] = [f"group1-shard{i + 1}of{n}.bin" for i in range(n)]
    for i, p in enumerate(group["paths"]):
        (model_dir / p).write_bytes(data[i * size:(i + 1) * size])
    (model_dir / "model.json").write_text(json.dumps(spec))
    return n


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.tflite
def test_a_tfjs_model_in_more_shards_than_http_connections_loads(tmp_path):
    """TF.js waits for every shard's response before reading any: with more than Chromium's 6
    connections per host, the model never loaded (ResNet-18: 11 shards) until model.js read each as it came."""
    from exporters import tfjs
    from exporters.base import ExportJob, ExportOptions

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 1024), nn.ReLU(),
                          nn.Linear(1024, 10)).eval()  # 9 MB of weights
    x = np.random.default_rng(0).standard_normal((6, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    job = ExportJob(model=model, example=torch.zeros(1, 1, 8, 8), inputs=x, reference=ref, calib=x,
                    workdir=tmp_path, options=ExportOptions(bundle="site"))
    arts = {a.name: a for a in tfjs.export(job)}
    assert reshard(tmp_path / "site" / "model") > 6
    out, info = bundle.run_inputs(tmp_path / "site", x)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert info["backend"] == "wasm" and 0 < info["first_ms"] and info["load_ms"] > 0
    assert bundle.page_result(arts["web-bundle:tfjs"].path)["matches"]  # index.html too
