"""Layout Transposes folded out of a TF.js graph model (model.json), where LiteRT's converter folds them.

onnx2tf runs convolutions channels-last but leaves a residual Add in PyTorch's channels-first layout:
conv -> Transpose(0,3,1,2) -> AddV2 -> Transpose(0,2,3,1) -> conv. The TFLite converter cancels such pairs;
tensorflowjs_converter does not, and MobileNetV2's TF.js graph ran 26 Transposes that its TFLite model does
not have. An element-wise Add of same-shaped tensors gives the same numbers in either layout, so where every
input of a group of AddV2 ops arrives through Transpose(P) and every use leaves through Transpose(P^-1)
(or feeds another Add of the group), the group runs channels-last and those Transposes go. Only the graph's
topology changes (the perm constants stay, unused); the TF.js parity check that follows judges the result.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# layout-agnostic ops: element-wise on same-shaped tensors (ResNet's residual Add is followed by its ReLU)
ELEMENTWISE = {"AddV2", "Add", "Relu", "Relu6", "Sigmoid", "Tanh", "Elu", "Selu", "Softplus"}
SIZES = {"float32": 4, "int32": 4, "float16": 2, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "bool": 1,
         "int64": 8}


def _src(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def _int_consts(folder: Path, manifest: list[dict]) -> dict[str, list[int]]:
    """The values of the small int32 weights (the Transposes' perms), read from the shards in order."""
    out, offset = {}, 0
    data = b"".join((folder / p).read_bytes() for group in manifest for p in group["paths"])
    for group in manifest:
        for w in group["weights"]:
            dtype = (w.get("quantization") or {}).get("dtype", w["dtype"])
            size = int(np.prod(w["shape"], dtype=np.int64)) * SIZES.get(dtype, 4)
            if w["dtype"] == "int32" and "quantization" not in w and size <= 64:
                out[w["name"]] = np.frombuffer(data[offset:offset + size], "<i4").tolist()
            offset += size
    return out


def fold_transposes(model_json: Path) -> int:
    """Rewrite model.json in place; returns how many Transposes were removed."""
    m = json.loads(model_json.read_text())
    nodes = m["modelTopology"]["node"]
    by_name = {n["name"]: n for n in nodes}
    perms = _int_consts(model_json.parent, m.get("weightsManifest", []))
    outputs = {_src(o["name"]) for o in (m.get("signature") or {}).get("outputs", {}).values()}
    users: dict[str, list[dict]] = {}
    for n in nodes:
        for i in n.get("input", []):
            users.setdefault(_src(i), []).append(n)

    def perm(n: dict) -> tuple[int, ...] | None:
        if n["op"] != "Transpose" or n["name"] in outputs or len(n.get("input", [])) != 2:
            return None
        p = perms.get(_src(n["input"][1]))
        return tuple(p) if p else None

    # the group: element-wise ops whose every input is a Transpose(P) or a member, every use a member or a
    # Transpose(P^-1); shrunk until it holds (one P: the channels-first round trip)
    group = {n["name"] for n in nodes if n["op"] in ELEMENTWISE and n["name"] not in outputs}
    want = (0, 3, 1, 2)
    back = tuple(int(i) for i in np.argsort(want))
    changed = True
    while changed:
        changed = False
        for name in list(group):
            n = by_name[name]
            ins = [by_name.get(_src(i)) for i in n["input"] if not i.startswith("^")]
            ok_in = all(i is not None and (i["name"] in group or perm(i) == want) for i in ins)
            ok_out = all(u["name"] in group or perm(u) == back for u in users.get(name, []))
            if not (ok_in and ok_out and ins):
                group.discard(name)
                changed = True
    removed: set[str] = set()
    for name in group:
        n = by_name[name]
        for k, i in enumerate(n["input"]):
            t = by_name[_src(i)]
            if t["name"] not in group:  # an entering Transpose(P): read what it transposes
                n["input"][k] = t["input"][0]
                if all(u["name"] in group for u in users.get(t["name"], [])):
                    removed.add(t["name"])
        for u in users.get(name, []):
            if u["name"] in group:
                continue
            removed.add(u["name"])  # a leaving Transpose(P^-1): its users read the group's output
            for v in users.get(u["name"], []):
                v["input"] = [name if _src(i) == u["name"] and not i.startswith("^") else i for i in v["input"]]
    if removed:
        m["modelTopology"]["node"] = [n for n in nodes if n["name"] not in removed]
        model_json.write_text(json.dumps(m))
    return len(removed)


def transpose_count(model_json: Path) -> int:
    return sum(n["op"] == "Transpose" for n in json.loads(model_json.read_text())["modelTopology"]["node"])
