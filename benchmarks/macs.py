"""Parameters and multiply-accumulates (MACs) per inference, read from an ONNX graph at batch 1.

Counted: Conv, ConvTranspose, Gemm, MatMul (and their quantized forms), which carry nearly all the
arithmetic of the models this project compresses; elementwise ops are left out, as most MAC
counters do. Achieved GFLOP/s = 2 x MACs / median latency.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.errors import CompressError


def _shape(vi: Any) -> list[int] | None:
    dims = vi.type.tensor_type.shape.dim
    out = [d.dim_value for d in dims]
    return out if dims and all(v > 0 for v in out) else None


def count(path: Path) -> dict[str, int]:
    """{"parameters", "macs"} of an ONNX model at batch 1."""
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError, or an OSError: either way not a model to count
        raise CompressError(f"{path} is not a readable ONNX model ({type(e).__name__}); re-export it") from None
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    g = m.graph
    inits = {t.name: list(t.dims) for t in g.initializer}
    for vi in list(g.input) + list(g.output):  # fix every symbolic (batch) dimension to 1, then infer
        if vi.name in inits:
            continue
        for d in vi.type.tensor_type.shape.dim:
            if not d.dim_value:
                d.Clear()
                d.dim_value = 1
    try:
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:  # noqa: BLE001 - counting is best effort; parameters are still right
        return {"parameters": params, "macs": 0}
    shapes = dict(inits)
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        s = _shape(vi)
        if s is not None:
            shapes[vi.name] = s
    macs = 0
    for n in m.graph.node:
        op = n.op_type
        if op in ("Conv", "QLinearConv", "ConvInteger", "ConvTranspose"):
            w_name = n.input[3] if op == "QLinearConv" else n.input[1]
            w, y = shapes.get(w_name), shapes.get(n.output[0])
            if w and y:
                x_shape = shapes.get(n.input[0])
                if op == "ConvTranspose" and x_shape:
                    macs += int(np.prod(x_shape)) * int(np.prod(w[1:]))
                else:
                    macs += int(np.prod(y)) * int(np.prod(w[1:]))
        elif op in ("Gemm", "MatMul", "QLinearMatMul", "MatMulInteger"):
            a = shapes.get(n.input[0])
            y = shapes.get(n.output[0])
            if a and y:
                k = a[0] if op == "Gemm" and any(at.name == "transA" and at.i for at in n.attribute) else a[-1]
                macs += int(np.prod(y)) * k
    return {"parameters": params, "macs": int(macs)}
