"""Rewrite exact GELU in an ONNX graph into ops that TFLite (float *and* int8) and TF.js all run.

PyTorch's exact GELU exports (opset 17) as  0.5 * (x * (1 + Erf(x / sqrt 2))).  TFLite has no builtin Erf,
onnx2tf's `-rtpo Erf` replacement computes sign(z) as z / (|z| + eps), and a full-integer DIV refuses the
zero denominator that quantization makes of it. Since x * erf(x / sqrt 2) = |x| * erf(|x| / sqrt 2), GELU is

    0.5 * (x + |x| * (1 - P(t) * exp(-x^2 / 2))),   t = 1 / (1 + p |x| / sqrt 2)

with Abramowitz-Stegun 7.1.26 (|error of erf| <= 1.5e-7). Every division has a denominator >= 1, and the ops
(Abs, Mul, Add, Sub, Div, Exp) are builtins with int8 kernels in TFLite and kernels in TF.js.
"""
from __future__ import annotations

import numpy as np

P = 0.3275911
A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _const(model, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for i in model.graph.initializer:
        if i.name == name:
            return numpy_helper.to_array(i)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output and n.output[0] == name and n.attribute:
            return numpy_helper.to_array(n.attribute[0].t)
    return None


def _is(model, name: str, value: float) -> bool:
    c = _const(model, name)
    return c is not None and c.size == 1 and abs(float(c.reshape(-1)[0]) - value) < 1e-6


def _match(model, div, consumers: dict) -> list | None:
    """[div, erf, add, mul, mul_half] when `div` starts an exact-GELU pattern."""
    def only(name):
        c = consumers.get(name, [])
        return c[0] if len(c) == 1 else None

    if div.op_type != "Div" or not _is(model, div.input[1], 2 ** 0.5):
        return None
    x = div.input[0]
    erf = only(div.output[0])
    add = erf and erf.op_type == "Erf" and only(erf.output[0])
    ok_add = add and add.op_type == "Add" and any(_is(model, i, 1.0) for i in add.input)
    mul = ok_add and only(add.output[0])
    ok_mul = mul and mul.op_type == "Mul" and x in mul.input
    half = ok_mul and only(mul.output[0])
    if half and half.op_type == "Mul" and any(_is(model, i, 0.5) for i in half.input):
        return [div, erf, add, mul, half]
    return None


def _replacement(x: str, out: str, prefix: str, dtype) -> tuple[list, list]:
    from onnx import helper, numpy_helper

    consts = {"half": 0.5, "one": 1.0, "p": P / 2 ** 0.5, "neg_half": -0.5, **{f"a{i}": a for i, a in enumerate(A)}}
    inits = [numpy_helper.from_array(np.array(v, dtype=dtype), f"{prefix}/{k}") for k, v in consts.items()]
    c = {k: f"{prefix}/{k}" for k in consts}
    n = lambda op, ins, name: helper.make_node(op, ins, [f"{prefix}/{name}"], name=f"{prefix}/{name}")
    nodes = [
        n("Abs", [x], "abs"),
        n("Mul", [f"{prefix}/abs", c["p"]], "pz"),
        n("Add", [f"{prefix}/pz", c["one"]], "den"),
        n("Div", [c["one"], f"{prefix}/den"], "t"),
        # Horner: ((((a4 t + a3) t + a2) t + a1) t + a0) t
        n("Mul", [f"{prefix}/t", c["a4"]], "h4"), n("Add", [f"{prefix}/h4", c["a3"]], "s3"),
        n("Mul", [f"{prefix}/s3", f"{prefix}/t"], "h3"), n("Add", [f"{prefix}/h3", c["a2"]], "s2"),
        n("Mul", [f"{prefix}/s2", f"{prefix}/t"], "h2"), n("Add", [f"{prefix}/h2", c["a1"]], "s1"),
        n("Mul", [f"{prefix}/s1", f"{prefix}/t"], "h1"), n("Add", [f"{prefix}/h1", c["a0"]], "s0"),
        n("Mul", [f"{prefix}/s0", f"{prefix}/t"], "poly"),
        n("Mul", [x, x], "x2"), n("Mul", [f"{prefix}/x2", c["neg_half"]], "e_arg"),
        n("Exp", [f"{prefix}/e_arg"], "e"),
        n("Mul", [f"{prefix}/poly", f"{prefix}/e"], "tail"),
        n("Sub", [c["one"], f"{prefix}/tail"], "erf_abs"),
        n("Mul", [f"{prefix}/abs", f"{prefix}/erf_abs"], "x_erf"),
        n("Add", [x, f"{prefix}/x_erf"], "sum"),
    ]
    nodes.append(helper.make_node("Mul", [f"{prefix}/sum", c["half"]], [out], name=f"{prefix}/Gelu"))
    return nodes, inits


def rewrite(model) -> int:
    """Replace every exact-GELU pattern in `model` (an onnx ModelProto, edited in place); returns how many."""
    g = model.graph
    consumers: dict[str, list] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    found = [m for m in (_match(model, node, consumers) for node in g.node) if m]
    for k, (div, *_, half) in enumerate(found):
        layer = div.name.rsplit("/", 1)[0] or f"/gelu{k}"
        nodes, inits = _replacement(div.input[0], half.output[0], f"{layer}/gelu_abs{k}", np.float32)
        at = list(g.node).index(div)
        for j, node in enumerate(nodes):
            g.node.insert(at + j, node)
        g.initializer.extend(inits)
    for pattern in found:
        for node in pattern:
            g.node.remove(node)
    return len(found)
