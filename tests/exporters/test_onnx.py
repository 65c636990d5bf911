import numpy as np
import onnx
import pytest
import torch

from compressor.core.artifact import require_parity
from compressor.core.errors import CompressError
from exporters import onnx as onnx_exporter
from exporters.base import ExportJob


def _job(model, tmp_path, example_shape=(1, 1, 8, 8)):
    x = np.random.default_rng(0).random((32, *example_shape[1:]), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return ExportJob(model=model.eval(), example=torch.zeros(example_shape), inputs=x, reference=ref,
                     calib=x, workdir=tmp_path, labels=ref.argmax(1))


def test_export_and_parity(tmp_path):
    from compressor.models import DigitsCNN

    job = _job(DigitsCNN(width=8), tmp_path)
    [a] = onnx_exporter.export(job)
    a.parity = onnx_exporter.validate(a, job)
    require_parity(a)
    assert a.parity.max_abs_diff < 1e-4 and a.parity.top1_agreement == 1.0
    assert a.inputs[0].shape[0] == "batch" and a.opset >= 17
    onnx.checker.check_model(str(a.path))


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_both_exporters_and_dynamic_batch(tmp_path, exporter):
    from compressor.models import DigitsMLP

    m = DigitsMLP().eval()
    info = onnx_exporter.to_onnx(m, torch.zeros(1, 1, 8, 8), tmp_path / "m.onnx", exporter=exporter)
    assert info["exporter"] == exporter
    assert [f.name for f in tmp_path.iterdir()] == ["m.onnx"]  # weights inside, no external .data file
    x = np.random.rand(7, 1, 8, 8).astype(np.float32)
    out = onnx_exporter.run(tmp_path / "m.onnx", x)
    np.testing.assert_allclose(out, m(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_broken_export_is_caught(tmp_path):
    """An export whose weights were corrupted must fail parity, not be written."""
    from compressor.models import DigitsMLP

    job = _job(DigitsMLP(), tmp_path)
    [a] = onnx_exporter.export(job)
    m = onnx.load(str(a.path))
    w = next(i for i in m.graph.initializer if len(i.dims) == 2)
    arr = onnx.numpy_helper.to_array(w) * 1.5
    w.CopyFrom(onnx.numpy_helper.from_array(arr, w.name))
    onnx.save(m, str(a.path))
    a.parity = onnx_exporter.validate(a, job)
    assert not a.parity.passed
    with pytest.raises(CompressError, match="parity check failed for onnx:float32"):
        require_parity(a)


def test_untraceable_model_gives_one_line_error(tmp_path):
    class Bad(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow
                return x.flatten(1)
            return x.flatten(1) * 2
    with pytest.raises(CompressError, match="ONNX export failed"):
        onnx_exporter.to_onnx(Bad(), torch.zeros(1, 4), tmp_path / "m.onnx", exporter="dynamo")
