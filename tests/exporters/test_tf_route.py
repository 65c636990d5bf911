"""Fast checks of the TF route's small pieces: onnx2tf/tensorflowjs command lines, layouts, op statistics,
error messages that name the operator and the layer, bundle options."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compressor.core.errors import CompressError
from exporters import tf_route, tfjs
from exporters.base import ExportOptions


def op(name, inputs, outputs):
    return {"op_name": name, "inputs": inputs, "outputs": outputs}


def test_transpose_between_convs_is_counted_but_io_transposes_are_not():
    io_only = [op("TRANSPOSE", [0], [1]), op("CONV_2D", [1], [2]), op("CONV_2D", [2], [3]), op("MEAN", [3], [4]),
               op("TRANSPOSE", [4], [5]), op("FULLY_CONNECTED", [5], [6])]
    assert tf_route.transpose_stats(io_only) == {"transpose_ops": 2, "transposes_between_convs": 0}
    ping_pong = [op("CONV_2D", [0], [1]), op("TRANSPOSE", [1], [2]), op("RELU", [2], [3]),
                 op("TRANSPOSE", [3], [4]), op("DEPTHWISE_CONV_2D", [4], [5])]
    assert tf_route.transpose_stats(ping_pong) == {"transpose_ops": 2, "transposes_between_convs": 2}


def test_onnx2tf_keeps_nchw_only_for_image_inputs():
    cmd = tf_route.onnx2tf_command("m.onnx", "out", inputs=[("input", (1, 3, 16, 16))], layout="nchw")
    assert cmd[cmd.index("-k") + 1] == "input" and "input:1,3,16,16" in cmd and "Erf" in cmd
    assert "-k" not in tf_route.onnx2tf_command("m.onnx", "out", inputs=[("input", (1, 3, 16, 16))], layout="nhwc")
    # onnx2tf refuses -k on 2-D inputs (token ids)
    assert "-k" not in tf_route.onnx2tf_command("m.onnx", "out", inputs=[("input", (1, 16))], layout="nchw")


def test_to_layout_moves_channels_of_float_images_only():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    assert tf_route.to_layout(x, "nhwc").shape == (2, 4, 5, 3)
    assert tf_route.to_layout(x, "nhwc")[1, 2, 3, 1] == x[1, 1, 2, 3]
    assert tf_route.to_layout(x, "nchw") is x
    tokens = np.zeros((2, 16), dtype=np.int64)
    assert tf_route.to_layout(tokens, "nhwc") is tokens


def test_tfjs_quantization_flags_carry_their_value():
    cmd = tfjs.converter_command("sm", "out", "float16")
    assert "--quantize_float16=*" in cmd and cmd[-2:] == ["sm", "out"]
    assert not any(c.startswith("--quantize") for c in tfjs.converter_command("sm", "out"))
    with pytest.raises(CompressError, match="float16"):
        tfjs.converter_command("sm", "out", "int4")


@pytest.mark.parametrize("bad", ["/tmp/web", "../web", ""])
def test_bundle_must_stay_inside_out(bad):
    with pytest.raises(CompressError, match="--bundle"):
        ExportOptions(bundle=bad)
    assert ExportOptions(bundle="web/").bundle == "web/"


def small_onnx(path, op_type="Relu", domain=""):
    node = helper.make_node(op_type, ["input"], ["output"], name=f"/block/block.1/{op_type}", domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_unsupported_onnx_operator_names_operator_and_layer(tmp_path):
    tf_route.check_supported(small_onnx(tmp_path / "ok.onnx"))
    with pytest.raises(CompressError, match=r"operator MyOp .*layer 'block.1'"):
        tf_route.check_supported(small_onnx(tmp_path / "bad.onnx", "MyOp", domain="custom"))


def test_converter_log_is_turned_into_one_line_naming_the_layer(tmp_path):
    path = small_onnx(tmp_path / "m.onnx")
    log = ("\x1b[31mERROR:\x1b[0m The trace log is below.\nTraceback (most recent call last):\n"
           "ValueError: Cannot convert a partially known TensorShape\n"
           "\x1b[31mERROR:\x1b[0m onnx_op_name: /block/block.1/Relu\n")
    err = tf_route.conversion_error("onnx2tf", path, log)
    assert "operator Relu" in str(err) and "'block.1'" in str(err) and "ValueError" in str(err)
    assert "\n" not in str(err)


def test_gelu_rewrite_is_exact_and_leaves_no_erf(tmp_path):
    import onnxruntime as ort
    import torch

    from exporters import _gelu
    from exporters.onnx import to_onnx

    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Linear(8, 3)).eval()
    path = tmp_path / "gelu.onnx"
    to_onnx(model, torch.zeros(1, 6), path, exporter="torchscript")
    m = onnx.load(str(path))
    assert _gelu.rewrite(m) == 1
    onnx.checker.check_model(m)
    assert not any(n.op_type == "Erf" for n in m.graph.node)
    x = np.random.default_rng(0).normal(0, 3, (64, 6)).astype(np.float32)
    got = ort.InferenceSession(m.SerializeToString()).run(None, {"input": x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, atol=2e-6)
    assert _gelu.rewrite(m) == 0  # idempotent: nothing left to match
