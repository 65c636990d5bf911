"""Benchmark platforms (cpu, mobile, browser: `compress bench --targets`), the settings each expands to,
and emulated devices. (Export targets, onnx/tflite/tfjs, are exporters.TARGETS.)

A Setting is one way of running an artifact: a runtime, a thread count, pinning, a memory cap,
a browser backend, a device profile. Settings are named so rows can be matched across runs.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from compressor.core.errors import CompressError
from compressor.core.registry import Registry


@dataclass(frozen=True)
class Device:
    playwright: str  # key in Playwright's p.devices (viewport, user agent, touch, scale)
    throttle: float  # default CDP CPU throttling rate: 4 = DevTools' mid-tier mobile, 6 = low-end
    tier: str


DEVICES: Registry[Device] = Registry("device")
DEVICES.add("pixel-7", Device("Pixel 7", 4.0, "mid-tier"))
DEVICES.add("galaxy-s9", Device("Galaxy S9+", 4.0, "mid-tier"))
DEVICES.add("galaxy-a55", Device("Galaxy A55", 4.0, "mid-tier"))
DEVICES.add("moto-g4", Device("Moto G4", 6.0, "low-end"))
DEVICES.add("pixel-2", Device("Pixel 2", 6.0, "low-end"))


@dataclass(frozen=True)
class Setting:
    target: str  # cpu | mobile | browser
    name: str  # unique within a run, e.g. "onnxruntime-1t", "tfjs-wasm@pixel-7x4"
    runner: str  # native runner (benchmarks.runners.NATIVE) or browser runtime "tfjs" / "ort"
    formats: tuple[str, ...]
    browser: bool = False
    threads: int = 0  # 0: all usable cores
    pin_core: int | None = None
    mem_cap_mb: int | None = None
    backend: str | None = None  # TF.js backend in the browser
    device: str | None = None
    throttle: float = 1.0
    reference: bool = False  # the PyTorch row: timed, but the artifact rows are what ship


@dataclass(frozen=True)
class PlatformOptions:
    device: str = "pixel-7"
    cpu_throttle: float | None = None  # None: the device's default
    mem_cap_mb: int = 512
    browser_backends: tuple[str, ...] = ("wasm", "webgl", "cpu")

    def __post_init__(self) -> None:
        DEVICES.get(self.device)
        if self.cpu_throttle is not None and not 1 <= self.cpu_throttle <= 20:
            raise CompressError("--cpu-throttle must be between 1 (none) and 20")
        if self.mem_cap_mb < 64:
            raise CompressError("--mem-cap-mb must be at least 64")
        for b in self.browser_backends:
            if b not in ("wasm", "webgl", "cpu"):
                raise CompressError(f"unknown TF.js backend {b!r}; choose from wasm, webgl, cpu")


PLATFORMS: Registry[Callable[[PlatformOptions], list[Setting]]] = Registry("bench target")


def _cores() -> int:
    return len(os.sched_getaffinity(0))


@PLATFORMS.register("cpu")
def cpu(o: PlatformOptions) -> list[Setting]:
    import exporters

    native = [exporters.TARGETS.get(n) for n in exporters.TARGETS]
    out = []
    for threads in dict.fromkeys((1, _cores())):  # one row when the machine has one core
        tag = f"{threads}t"
        out += [Setting("cpu", f"{t.runtime}-{tag}", t.runtime, (t.format,), threads=threads)
                for t in native if t.runtime and t.format]
        out.append(Setting("cpu", f"torch-{tag}", "torch", ("torchscript", "pt2"), threads=threads, reference=True))
    return out


@PLATFORMS.register("mobile")
def mobile(o: PlatformOptions) -> list[Setting]:
    dev = DEVICES.get(o.device)
    rate = o.cpu_throttle or dev.throttle
    # phones run small models on one big core: one core, one thread, a memory cap
    big_core = max(os.sched_getaffinity(0))
    return [Setting("mobile", f"litert-1core-{o.mem_cap_mb}MB", "litert", ("tflite",), threads=1,
                    pin_core=big_core, mem_cap_mb=o.mem_cap_mb),
            Setting("mobile", f"tfjs-wasm@{o.device}x{rate:g}", "tfjs", ("tfjs",), browser=True, backend="wasm",
                    device=o.device, throttle=rate)]


@PLATFORMS.register("browser")
def browser(o: PlatformOptions) -> list[Setting]:
    out = [Setting("browser", f"tfjs-{b}", "tfjs", ("tfjs",), browser=True, backend=b) for b in o.browser_backends]
    out.append(Setting("browser", "ort-web-wasm", "ort", ("onnx",), browser=True, backend="wasm"))
    return out


def expand(targets: str | tuple[str, ...], options: PlatformOptions) -> list[Setting]:
    """'cpu,mobile' or 'all' -> settings, checked against the registry."""
    names = targets.split(",") if isinstance(targets, str) else list(targets)
    out: list[Setting] = []
    for n in (x.strip() for x in names):
        for t in PLATFORMS.names() if n == "all" else [n]:
            for s in PLATFORMS.get(t)(options):
                if s not in out:
                    out.append(s)
    return out

