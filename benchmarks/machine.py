"""What the numbers were measured on: CPU, cores, runtime versions, commit, and a matmul peak.

The peak is measured once per run (fp32 matrix multiply in PyTorch at 1 thread and at all
cores), so achieved GFLOP/s of each artifact can be read against what this machine can do now,
on the same day and under the same neighbours.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from compressor.core import chromium

# CPU features that decide which kernels runtimes pick (x86 SIMD, int8 dot products, Arm NEON/dotprod).
FLAGS_OF_INTEREST = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                     "avx512_bf16", "amx_tile", "neon", "asimd", "asimddp", "sve", "i8mm")
RUNTIMES = ("numpy", "torch", "onnxruntime", "ai-edge-litert", "tensorflow", "playwright", "matplotlib", "scipy")


def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            key = key.strip()
            if key in ("model name", "Hardware", "CPU part") and model in ("", platform.machine()):
                model = val.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(val.split())
    except OSError:
        pass
    return {"model": model, "arch": platform.machine(), "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)),
            "flags": [f for f in FLAGS_OF_INTEREST if f in flags]}


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def runtime_versions() -> dict[str, str]:
    from compressor.core.provenance import tool_versions

    out = tool_versions(RUNTIMES)
    for pkg, key in (("@tensorflow/tfjs", "tfjs"), ("onnxruntime-web", "onnxruntime-web")):
        f = chromium.node_modules() / pkg / "package.json"
        if f.exists():
            out[key] = json.loads(f.read_text()).get("version", "?")
    return out


def matmul_peak(n: int = 768, seconds: float = 0.4) -> dict[str, float]:
    """Best fp32 GFLOP/s of an n x n matmul in PyTorch at 1 thread and at all usable cores."""
    import torch

    before = torch.get_num_threads()
    a, b = torch.randn(n, n), torch.randn(n, n)
    out: dict[str, float] = {}
    try:
        for label, threads in (("1_thread", 1), ("all_cores", len(os.sched_getaffinity(0)))):
            torch.set_num_threads(threads)
            torch.mm(a, b)
            best, start = float("inf"), time.perf_counter()
            while time.perf_counter() - start < seconds:
                t0 = time.perf_counter()
                torch.mm(a, b)
                best = min(best, time.perf_counter() - t0)
            out[label] = round(2 * n**3 / best / 1e9, 1)
    finally:
        torch.set_num_threads(before)
    return out


def info(*, peak: bool = True) -> dict[str, Any]:
    from compressor.core.provenance import commit

    return {"cpu": cpu_info(), "memory_bytes": memory_bytes(), "os": platform.platform(),
            "runtimes": runtime_versions(), "commit": commit(),
            "load_avg_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
            "matmul_gflops": matmul_peak() if peak else None}
