"""exporters.onnx.int8 helpers: the float copy of a QDQ model (what onnx2tf reads for QAT -> TFLite)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from compressor.core.errors import CompressError
from compressor.quantize import StaticInt8, quantize
from exporters.onnx.int8 import dequantized, op_types


@pytest.fixture(scope="module")
def qdq(float_onnx, splits, reference, tmp_path_factory):
    return quantize(float_onnx, StaticInt8(fallback=False), splits=splits, workdir=tmp_path_factory.mktemp("qdq"),
                    reference=reference).artifact.path


def test_dequantized_folds_weights_exactly_and_drops_activation_pairs(qdq, splits, tmp_path):
    from exporters.onnx import run

    twin = dequantized(qdq, tmp_path / "twin.onnx")
    assert not {"QuantizeLinear", "DequantizeLinear"} & set(op_types(twin))
    src = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(qdq)).graph.initializer}
    dq = {n.output[0]: n for n in onnx.load(str(qdq)).graph.node
          if n.op_type == "DequantizeLinear" and n.input[0] in src and src[n.input[0]].ndim >= 2}
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(twin)).graph.initializer}
    assert dq and set(dq) <= set(weights)
    for name, node in dq.items():  # every folded weight is its int8 values times the per-channel scale
        q, scale = src[node.input[0]].astype(np.float32), src[node.input[1]]
        shape = (-1,) + (1,) * (q.ndim - 1)
        assert weights[name].dtype == np.float32
        np.testing.assert_array_equal(weights[name], (q * scale.reshape(shape)).astype(np.float32))
    # only the activation rounding is gone: the answers stay those of the int8 model
    x = splits.test.x
    agree = (run(twin, x).argmax(1) == run(qdq, x).argmax(1)).mean()
    assert agree >= 0.98


def test_a_lone_quantize_is_refused(float_onnx, tmp_path):
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [2])],
        [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.uint8(0), "z")])
    src = tmp_path / "q.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    with pytest.raises(CompressError, match="Q->DQ pair"):
        dequantized(src, tmp_path / "twin.onnx")
