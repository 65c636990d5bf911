"""Which int8 scheme runs well, and correctly, on this CPU.

ONNX Runtime's x86 u8s8 kernels use VPMADDUBSW on AVX2/AVX-512 without VNNI; it adds pairs
of u8*s8 products into int16 and can saturate (ORT quantization docs). With VNNI (VPDPBUSD)
there is no intermediate int16 and no saturation. Without VNNI the docs' remedies are
reduce_range (7-bit weights: the pair sums then fit int16) or u8u8. We read the flags and
record the choice and the reason in the manifest.
"""
from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class Int8Scheme:
    activations: str  # uint8 | int8
    weights: str  # int8 | uint8
    reduce_range: bool
    reason: str

    @property
    def name(self) -> str:
        short = {"uint8": "u8", "int8": "s8"}
        return short[self.activations] + short[self.weights]

    def to_dict(self) -> dict:
        return {"scheme": self.name, **asdict(self)}


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (x86 'flags' or ARM 'Features' in /proc/cpuinfo; empty when unknown)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def choose(flags: frozenset[str] | None = None, machine: str | None = None) -> Int8Scheme:
    """The static int8 scheme for ONNX Runtime on a CPU with these flags."""
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    vnni = sorted(flags.intersection(VNNI_FLAGS))
    if vnni:
        return Int8Scheme("uint8", "int8", False, f"VNNI ({', '.join(vnni)}): u8s8 has no saturation")
    if "avx2" in flags or "avx512bw" in flags:
        return Int8Scheme("uint8", "int8", True, "AVX2 without VNNI: u8s8 can saturate, so 7-bit weights "
                                                 "(reduce_range)")
    if machine in ("aarch64", "arm64") or "asimd" in flags:
        return Int8Scheme("uint8", "int8", False, "ARM: u8s8 through the dot-product kernels, no saturation")
    return Int8Scheme("uint8", "uint8", False, "no AVX2/VNNI/ARM flags found: u8u8, which cannot saturate")


def web() -> Int8Scheme:
    """onnxruntime-web (wasm): the host's flags say nothing about the browser's CPU, so a fixed u8s8.

    Checked: onnxruntime-web 1.30.0 wasm gave ONNX Runtime CPU's exact outputs for this QDQ form.
    """
    return Int8Scheme("uint8", "int8", False, "onnxruntime-web wasm kernels (QDQ u8s8, no ConvInteger)")


def explicit(name: str, reduce_range: bool) -> Int8Scheme:
    act, w = {"u8s8": ("uint8", "int8"), "u8u8": ("uint8", "uint8"), "s8s8": ("int8", "int8")}[name]
    return Int8Scheme(act, w, reduce_range, "chosen explicitly")
