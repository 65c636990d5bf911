"""QAT (torchao PT2E) with the distillation loss on: an int8 QDQ ONNX at least as accurate as static PTQ."""
from __future__ import annotations

import onnx
import pytest

from compressor.errors import CompressError
from compressor.quantize import QAT, StaticInt8, quantize
from compressor.quantize.onnx import op_types

pytest.importorskip("torchao")


@pytest.fixture(scope="module")
def small(splits):
    """400 training samples: QAT on a shared 2-core machine stays under a minute."""
    from compressor.data import Dataset, Splits

    t = splits.train
    return Splits(Dataset(t.x[:400], t.y[:400], t.classes, t.source), splits.val, splits.test)


@pytest.fixture(scope="module")
def student(small):
    from compressor.models import DigitsCNN
    from compressor.train import fit, seed_everything

    seed_everything(0)  # the initial weights too, not only fit's batches
    return fit(DigitsCNN(width=8), small.train, small.val, epochs=25, seed=0)


@pytest.mark.slow
def test_qat_int8_onnx_is_as_accurate_as_static_ptq(student, teacher, small, tmp_path):
    from compressor.train import predict

    ref = predict(student, small.test.x)
    ptq = quantize(student, StaticInt8(), splits=small, workdir=tmp_path / "ptq", reference=ref).artifact
    qat = quantize(student, QAT(epochs=2), splits=small, workdir=tmp_path / "qat", teacher=teacher,
                   reference=ref).artifact
    assert (qat.format, qat.variant) == ("onnx", "qat-int8") and qat.parity.passed
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(op_types(qat.path))
    m = onnx.load(str(qat.path))
    assert {i.data_type for i in m.graph.initializer if len(i.dims) >= 2} == {onnx.TensorProto.INT8}
    info = qat.extra["quantization"]
    assert info["method"] == "qat" and "kd_loss" in info["distillation"]["loss"]
    assert info["distillation"]["teacher"] == "given"
    # one held-out sample is 0.28 points: QAT may not trail PTQ by more than that
    assert qat.parity.accuracy >= ptq.parity.accuracy - 1 / len(small.test) - 1e-9
    assert qat.parity.accuracy_drop_points <= 1.0


def test_qat_needs_a_trainable_module(float_onnx, splits, tmp_path):
    with pytest.raises(CompressError, match="QAT needs the torch model"):
        quantize(float_onnx, QAT(), splits=splits, workdir=tmp_path)
