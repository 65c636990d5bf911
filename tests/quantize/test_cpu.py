"""The int8 scheme follows the CPU's flags (u8s8 saturation without VNNI)."""
from __future__ import annotations

from compressor.quantize import cpu


def test_flags_are_read_from_cpuinfo_text():
    text = "processor\t: 0\nflags\t\t: fpu sse avx2 fma avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    assert cpu.cpu_flags(text) == frozenset({"fpu", "sse", "avx2", "fma", "avx512_vnni"})
    assert cpu.cpu_flags("Features\t: fp asimd asimddp\n") == frozenset({"fp", "asimd", "asimddp"})
    assert cpu.cpu_flags("nothing here") == frozenset()


def test_vnni_keeps_full_range_u8s8():
    for flag in ("avx512_vnni", "avx_vnni"):
        s = cpu.choose(frozenset({"avx2", "fma", flag}), "x86_64")
        assert (s.name, s.reduce_range) == ("u8s8", False)
        assert "VNNI" in s.reason


def test_avx2_without_vnni_avoids_saturation_with_reduce_range():
    s = cpu.choose(frozenset({"avx2", "fma", "avx"}), "x86_64")
    assert (s.name, s.reduce_range) == ("u8s8", True)
    assert "saturate" in s.reason


def test_arm_and_unknown_cpus():
    assert cpu.choose(frozenset({"asimd"}), "aarch64").reduce_range is False
    s = cpu.choose(frozenset({"sse2"}), "x86_64")
    assert (s.name, s.reduce_range) == ("u8u8", False)


def test_this_machine_choice_is_consistent_with_its_flags():
    flags = cpu.cpu_flags()
    s = cpu.choose()
    has_vnni = bool(flags & set(cpu.VNNI_FLAGS))
    if "avx2" in flags:
        assert s.reduce_range is not has_vnni
