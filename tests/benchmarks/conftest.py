"""Tiny artifacts for the benchmark tests, built directly (no exporter, no training): fast and exact."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

WIDTH = 128


def chain_onnx(path: Path, links: int, seed: int = 0) -> Path:
    """An ONNX model x[batch,WIDTH] -> y[batch,10] whose cost grows with `links`, at ~WIDTH^2 MACs each.

    y = Gemm(h_links) where h_{k+1} = Relu(h_k @ W_k): the chain is on the data path, so no runtime
    can fold it away. Same inputs, same `links`, same seed -> same model; more links = a known extra cost.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, h = [], [], "x"
    for k in range(links):
        w = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{k}"))
        nodes += [helper.make_node("MatMul", [h, f"w{k}"], [f"m{k}"]), helper.make_node("Relu", [f"m{k}"], [f"h{k}"])]
        h = f"h{k}"
    inits += [numpy_helper.from_array((rng.standard_normal((WIDTH, 10)) / 10).astype(np.float32), "wo"),
              numpy_helper.from_array(np.zeros(10, np.float32), "bo")]
    nodes.append(helper.make_node("Gemm", [h, "wo", "bo"], ["y"]))
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """base: 4 links; slow: the same model name with 160 links (~40x the arithmetic)."""
    d = tmp_path_factory.mktemp("bench-models")
    return {"base": chain_onnx(d / "base" / "model.onnx", 4), "slow": chain_onnx(d / "slow" / "model.onnx", 160)}


def tfjs_affine(folder: Path, w: np.ndarray, b: np.ndarray) -> Path:
    """A TF.js graph model y = x @ w + b written directly (model.json + one weight shard)."""
    folder.mkdir(parents=True, exist_ok=True)
    n_in, n_out = w.shape

    def dims(*d: int) -> dict:
        return {"dim": [{"size": str(x)} for x in d]}

    f32 = {"type": "DT_FLOAT"}
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {"dtype": f32, "shape": {"shape": dims(-1, n_in)}}},
        {"name": "w", "op": "Const", "attr": {"dtype": f32, "value": {"tensor": {"dtype": "DT_FLOAT",
                                                                                  "tensorShape": dims(n_in, n_out)}}}},
        {"name": "b", "op": "Const", "attr": {"dtype": f32, "value": {"tensor": {"dtype": "DT_FLOAT",
                                                                                  "tensorShape": dims(n_out)}}}},
        {"name": "mm", "op": "MatMul", "input": ["x", "w"],
         "attr": {"T": f32, "transpose_a": {"b": False}, "transpose_b": {"b": False}}},
        {"name": "Identity", "op": "AddV2", "input": ["mm", "b"], "attr": {"T": f32}},
    ]
    model = {"format": "graph-model", "generatedBy": "tests", "convertedBy": "tests",
             "modelTopology": {"node": nodes, "library": {}, "versions": {"producer": 1}},
             "signature": {"inputs": {"x:0": {"name": "x:0", "dtype": "DT_FLOAT", "tensorShape": dims(-1, n_in)}},
                           "outputs": {"Identity:0": {"name": "Identity:0", "dtype": "DT_FLOAT",
                                                      "tensorShape": dims(-1, n_out)}}},
             "weightsManifest": [{"paths": ["group1-shard1of1.bin"],
                                  "weights": [{"name": "w", "shape": [n_in, n_out], "dtype": "float32"},
                                              {"name": "b", "shape": [n_out], "dtype": "float32"}]}]}
    (folder / "model.json").write_text(json.dumps(model))
    (folder / "group1-shard1of1.bin").write_bytes(w.astype("<f4").tobytes() + b.astype("<f4").tobytes())
    return folder
