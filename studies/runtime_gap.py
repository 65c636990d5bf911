"""ONNX Runtime against LiteRT on the same model, measured interleaved in one process (a neighbour's burst hits
every runtime alike): ORT with all graph optimisations, ORT without its NCHWc layout transform
(ORT_ENABLE_EXTENDED), and LiteRT float32 with its default XNNPACK delegate.

    .venv/bin/python -m studies.runtime_gap MODEL.onnx MODEL.tflite [--threads 1] [--rounds 60]

Why the middle row: on ResNet-18 LiteRT fp32 was ~1.5x slower than ORT at 1 thread, and ORT without the
NCHWc transform ran as fast as LiteRT. ORT's CPU provider rewrites convolutions to a channel-blocked layout
(NCHWc) with direct-convolution kernels; XNNPACK runs the same CONV_2D ops as indirect GEMM on NHWC. The
graph LiteRT runs has no layout Transposes (one at the input) and every op delegated, so the gap is the
CONV_2D kernels, which this project cannot change (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def feeds_for(onnx_path: Path, seq_vocab: int = 100) -> dict[str, np.ndarray]:
    """One batch-1 input per ONNX input: float images as N(0,1), integer inputs (token ids, masks) as ids below
    both 100 and the rows of the embedding table they index (a Gather on the input), and ones for masks."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    out = {}
    for i in ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs():
        shape = [1 if not isinstance(d, int) else d for d in i.shape]
        if "int" in i.type:
            high = min(seq_vocab, _rows_indexed(onnx_path, i.name) or seq_vocab)
            out[i.name] = np.ones(shape, np.int64) if "mask" in i.name else rng.integers(min(2, high - 1), high, shape)
        else:
            out[i.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _rows_indexed(onnx_path: Path, name: str) -> int | None:
    """The fewest rows of a weight that a Gather takes with input `name` as its indices (a vocabulary size)."""
    import onnx

    g = onnx.load(str(onnx_path), load_external_data=False).graph
    dims = {t.name: t.dims for t in g.initializer}
    rows = [dims[n.input[0]][0] for n in g.node if n.op_type == "Gather" and n.input[1] == name and n.input[0] in dims]
    return min(rows) if rows else None


def ort_call(onnx_path: Path, feeds: dict[str, np.ndarray], threads: int, extended: bool) -> Callable[[], object]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if extended
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    s = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return lambda: s.run(None, feeds)


def litert_call(tflite_path: Path, feeds: dict[str, np.ndarray], threads: int) -> Callable[[], object]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite_path), num_threads=threads)
    runner = it.get_signature_runner()
    args = {}
    for name, d in runner.get_input_details().items():
        x = feeds.get(name)
        if x is None:  # onnx2tf may add a suffix; match by shape
            x = next(v for v in feeds.values() if tuple(v.shape) == tuple(d["shape"]) or v.size == np.prod(d["shape"]))
        args[name] = x.reshape(d["shape"]).astype(d["dtype"])
    return lambda: runner(**args)


def interleaved(calls: dict[str, Callable[[], object]], rounds: int, warmup: int = 5) -> dict[str, dict[str, float]]:
    """Median and quartiles (ms) of each call, measured round-robin."""
    for f in calls.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for k, f in calls.items():
            t0 = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: {"median": float(np.median(v)), "p25": float(np.percentile(v, 25)), "p75": float(np.percentile(v, 75))}
            for k, v in times.items()}


def measure(onnx_path: Path, tflite_path: Path, threads: int = 1, rounds: int = 60) -> dict[str, dict[str, float]]:
    feeds = feeds_for(onnx_path)
    return interleaved({"ort": ort_call(onnx_path, feeds, threads, extended=False),
                        "ort_no_nchwc": ort_call(onnx_path, feeds, threads, extended=True),
                        "litert_fp32": litert_call(tflite_path, feeds, threads)}, rounds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("onnx", type=Path)
    p.add_argument("tflite", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=60)
    a = p.parse_args(argv)
    res = measure(a.onnx, a.tflite, a.threads, a.rounds)
    base = res["ort"]["median"]
    for k, v in res.items():
        print(f"{k:14s} median {v['median']:8.2f} ms (IQR {v['p25']:.2f}-{v['p75']:.2f})  {v['median'] / base:.2f}x ORT")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
