"""Layout round trips around residual Adds folded out of a TF.js graph; anything else left as it is."""
import json

import numpy as np

from exporters.tfjs_graph import fold_transposes, transpose_count


def write(folder, nodes, outputs=("conv3",)):
    perms = {"to_nchw": [0, 3, 1, 2], "to_nhwc": [0, 2, 3, 1]}
    (folder / "w.bin").write_bytes(np.array(list(perms.values()), "<i4").tobytes())
    m = {"signature": {"outputs": {f"o{i}": {"name": f"{o}:0"} for i, o in enumerate(outputs)}},
         "modelTopology": {"node": [{"name": p, "op": "Const"} for p in perms] + nodes},
         "weightsManifest": [{"paths": ["w.bin"], "weights": [{"name": p, "shape": [4], "dtype": "int32"}
                                                              for p in perms]}]}
    (folder / "model.json").write_text(json.dumps(m))
    return folder / "model.json"


def node(name, op, *inputs):
    return {"name": name, "op": op, "input": list(inputs)}


RESIDUAL = [node("x", "Placeholder"), node("conv1", "_FusedConv2D", "x"), node("conv2", "_FusedConv2D", "conv1"),
            node("t1", "Transpose", "conv1", "to_nchw"), node("t2", "Transpose", "conv2", "to_nchw"),
            node("add", "AddV2", "t1", "t2"), node("t3", "Transpose", "add", "to_nhwc"),
            node("conv3", "_FusedConv2D", "t3")]


def test_a_residual_add_runs_channels_last_and_its_transposes_go(tmp_path):
    path = write(tmp_path, [dict(n, input=list(n["input"])) for n in RESIDUAL])
    assert fold_transposes(path) == 3 and transpose_count(path) == 0
    nodes = {n["name"]: n for n in json.loads(path.read_text())["modelTopology"]["node"]}
    assert nodes["add"]["input"] == ["conv1", "conv2"] and nodes["conv3"]["input"] == ["add"]


def test_an_add_with_a_constant_or_a_transposed_output_is_left_alone(tmp_path):
    broadcast = [n for n in RESIDUAL if n["name"] != "add"] + [node("bias", "Const"), node("add", "AddV2", "t1", "bias")]
    path = write(tmp_path, broadcast)
    assert fold_transposes(path) == 0 and transpose_count(path) == 3
    path = write(tmp_path, [dict(n, input=list(n["input"])) for n in RESIDUAL], outputs=("t3",))
    assert fold_transposes(path) == 0  # the graph's output keeps the layout the signature promises


def test_resnet_style_add_then_relu_feeding_the_next_add_runs_channels_last(tmp_path):
    nodes = [node("x", "Placeholder"), node("conv1", "_FusedConv2D", "x"), node("conv2", "_FusedConv2D", "conv1"),
             node("t1", "Transpose", "conv1", "to_nchw"), node("t2", "Transpose", "conv2", "to_nchw"),
             node("add", "AddV2", "t1", "t2"), node("relu", "Relu", "add"),
             node("t3", "Transpose", "relu", "to_nhwc"), node("conv3", "_FusedConv2D", "t3"),
             node("t4", "Transpose", "conv3", "to_nchw"), node("add2", "AddV2", "relu", "t4"),  # the skip connection
             node("relu2", "Relu", "add2"), node("t5", "Transpose", "relu2", "to_nhwc"), node("mean", "Mean", "t5")]
    path = write(tmp_path, nodes, outputs=("mean",))
    assert fold_transposes(path) == 5 and transpose_count(path) == 0
    got = {n["name"]: n.get("input") for n in json.loads(path.read_text())["modelTopology"]["node"]}
    assert got["add2"] == ["relu", "conv3"] and got["conv3"] == ["relu"] and got["mean"] == ["relu2"]
