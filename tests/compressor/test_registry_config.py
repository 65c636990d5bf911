import dataclasses

import pytest

from compressor.config import RunConfig, from_mapping
from compressor.core.errors import CompressError
from compressor.core.registry import Registry
from exporters.base import ExportOptions


def test_registry_lists_known_names():
    r: Registry[int] = Registry("colour")
    r.add("red", 1)
    r.add("blue", 2)
    assert r.get("red") == 1
    with pytest.raises(CompressError, match="unknown colour 'green'; choose one of: red, blue"):
        r.get("green")
    with pytest.raises(RuntimeError):
        r.add("red", 3)


def test_unknown_target_lists_targets():
    with pytest.raises(CompressError, match="unknown target 'coreml'.*onnx, tflite, tfjs"):
        RunConfig(model="m.pt", targets=("coreml",))


def test_from_mapping_builds_nested_frozen_config():
    cfg = from_mapping(RunConfig, {"model": "m.pt", "targets": ["onnx"], "export": {"calib_samples": 50}})
    assert cfg.export.calib_samples == 50 and cfg.targets == ("onnx",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.out = "x"


@pytest.mark.parametrize("data, msg", [({"model": "m", "colour": 1}, "unknown option"),
                                       ({"model": "m", "seed": "abc"}, "expected int"),
                                       ({"model": "m", "overwrite": "yes"}, "true or false"),
                                       ({"model": "m", "export": {"layout": "nwhc"}}, "unknown layout"),
                                       ([1, 2], "expected a mapping")])
def test_from_mapping_errors(data, msg):
    with pytest.raises(CompressError, match=msg):
        from_mapping(RunConfig, data)


@pytest.mark.parametrize("make, fragment", [
    (lambda: ExportOptions(max_accuracy_drop=float("nan")), "--max-accuracy-drop nan must be a finite number >= 0"),
    (lambda: ExportOptions(max_accuracy_drop=float("inf")), "--max-accuracy-drop inf must be a finite number"),
    (lambda: ExportOptions(min_agreement=float("nan")), "min_agreement nan must be a finite number in [0, 1]"),
    (lambda: ExportOptions(min_agreement=2.0), "min_agreement 2.0 must be in [0, 1]"),
    (lambda: RunConfig(model="m", seed=-1), "--seed -1 must be a whole number in [0, 4294967295]"),
    (lambda: RunConfig(model="m", seed=2**32), "--seed 4294967296 must be a whole number"),
    (lambda: RunConfig(model="m", input_shape=(1, 0, 8)), "--input-shape (1, 0, 8) must be positive"),
    (lambda: from_mapping(RunConfig, {"model": "m", "export": {"min_agreement": "nan"}}),
     "recipe.export: min_agreement nan must be a finite number"),
    (lambda: from_mapping(RunConfig, {"model": "m", "seed": float("inf")}), "recipe.seed: expected a whole number"),
    (lambda: from_mapping(RunConfig, {"model": "m", "seed": 1.5}), "recipe.seed: expected a whole number, got 1.5"),
    (lambda: from_mapping(RunConfig, {"model": "m", "distill": {"lr": "inf"}}), "recipe.distill: --lr inf must be"),
])
def test_float_and_range_checks_name_the_option(make, fragment):
    with pytest.raises(CompressError) as e:
        make()
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_from_mapping_bounds_the_depth_without_recursing():
    deep: list = []
    for _ in range(100_000):  # deeper than Python's stack: a recursive check would itself crash
        deep = [deep]
    with pytest.raises(CompressError, match="nests lists or mappings more than 16 levels deep"):
        from_mapping(RunConfig, {"model": "m", "targets": deep})
    shared = [1] * 10
    for _ in range(12):  # YAML aliases: 10**12 paths, 12 lists; checked once each, not once per path
        shared = [shared] * 10
    with pytest.raises(CompressError, match="expected str, got list"):
        from_mapping(RunConfig, {"model": "m", "targets": shared})
    loop: list = []
    loop.append(loop)
    with pytest.raises(CompressError, match="more than 16 levels"):
        from_mapping(RunConfig, {"model": "m", "targets": loop})
