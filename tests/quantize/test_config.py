"""Quantization configs: frozen, validated, unknown names list the valid choices."""
from __future__ import annotations

import dataclasses

import pytest

from compressor.core.errors import CompressError
from compressor.quantize import QAT, DynamicInt8, Fp16, StaticInt8, from_name


@pytest.mark.parametrize("make, listed", [
    (lambda: from_name("int4"), "int8, fp16, dynamic, qat"),
    (lambda: StaticInt8(calib_method="kl"), "minmax, entropy, percentile"),
    (lambda: StaticInt8(scheme="u4s4"), "auto, u8s8, u8u8, s8s8"),
    (lambda: StaticInt8(runtime="gpu"), "cpu, web"),
    (lambda: DynamicInt8(op_types=("Softmax",)), "MatMul, Gemm, Conv"),
])
def test_unknown_names_list_the_valid_choices(make, listed):
    with pytest.raises(CompressError, match="choose one of: " + listed):
        make()


@pytest.mark.parametrize("make", [
    lambda: StaticInt8(calib_samples=0),
    lambda: StaticInt8(max_accuracy_drop=-1),
    lambda: StaticInt8(min_agreement=1.5),
    lambda: StaticInt8(max_float_layers=-1),
    lambda: Fp16(max_accuracy_drop=-0.1),
    lambda: QAT(epochs=0),
    lambda: QAT(alpha=2.0),
])
def test_bad_values_are_errors(make):
    with pytest.raises(CompressError):
        make()


def test_configs_are_frozen():
    cfg = StaticInt8()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.calib_method = "entropy"


def test_from_name_maps_flags():
    cfg = from_name("int8", calib_method="entropy", calib_samples=64, max_accuracy_drop=0.5)
    assert cfg == StaticInt8(calib_method="entropy", calib_samples=64, max_accuracy_drop=0.5)
    assert isinstance(from_name("fp16"), Fp16) and isinstance(from_name("qat"), QAT)
    assert isinstance(from_name("dynamic"), DynamicInt8)
    with pytest.raises(CompressError, match="--calib-method applies to --quantize int8 only"):
        from_name("fp16", calib_method="entropy")


def test_run_config_takes_a_name_or_a_recipe_mapping():
    from compressor.config import RunConfig, from_mapping

    assert RunConfig(model="demo", quantize="fp16").quantize == Fp16()
    assert RunConfig(model="demo").quantize is None
    cfg = from_mapping(RunConfig, {"model": "demo", "quantize": {"calib_method": "percentile"}})
    assert cfg.quantize == StaticInt8(calib_method="percentile")
    with pytest.raises(CompressError, match="unknown quantization 'int3'"):
        RunConfig(model="demo", quantize="int3")


def test_cli_flags(capsys):
    from compressor.cli import main

    assert main(["nonexistent.pt", "--quantize", "int4"]) == 2
    assert "unknown quantization 'int4'; choose one of: int8, fp16, dynamic, qat" in capsys.readouterr().err
    assert main(["nonexistent.pt", "--quantize", "int8", "--calib-method", "mse"]) == 2
    assert "choose one of: minmax, entropy, percentile" in capsys.readouterr().err
    assert main(["nonexistent.pt", "--calib-method", "entropy"]) == 2
    assert "--calib-method needs --quantize int8" in capsys.readouterr().err
    assert main(["nonexistent.pt", "--quantize", "int8", "--max-accuracy-drop", "-2"]) == 2
    assert "max-accuracy-drop -2.0 must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("make, fragment", [
    (lambda: StaticInt8(max_accuracy_drop=float("nan")), "max_accuracy_drop nan must be a finite number >= 0"),
    (lambda: StaticInt8(min_agreement=float("nan")), "min_agreement nan must be a finite number in [0, 1]"),
    (lambda: DynamicInt8(max_accuracy_drop=float("inf")), "max_accuracy_drop inf must be a finite number"),
    (lambda: Fp16(min_agreement=float("-inf")), "min_agreement -inf must be a finite number"),
    (lambda: QAT(lr=float("inf")), "QAT lr inf must be a finite number in (0, 1]"),
    (lambda: QAT(lr=3.0), "QAT lr 3.0 must be in (0, 1]"),
    (lambda: QAT(temperature=float("nan")), "QAT temperature nan must be a finite number > 0"),
    (lambda: QAT(alpha=float("nan")), "QAT alpha nan must be a finite number in [0, 1]"),
    (lambda: QAT(seed=-1), "QAT seed -1 must be a whole number"),
    (lambda: from_name("int8", max_accuracy_drop=float("nan")), "max_accuracy_drop nan"),
])
def test_nan_and_inf_are_refused_with_the_range(make, fragment):
    """NaN passes `x < 0`, so before this a NaN budget silently switched the accuracy check off."""
    with pytest.raises(CompressError) as e:
        make()
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_cli_nan_budget_is_one_line(capsys):
    from compressor.cli import main

    assert main(["nonexistent.pt", "--quantize", "int8", "--max-accuracy-drop", "nan"]) == 2
    assert capsys.readouterr().err == \
        "error: --max-accuracy-drop nan must be a finite number >= 0 (percentage points)\n"
