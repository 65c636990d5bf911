import dataclasses

import pytest

from compressor.config import RunConfig, from_mapping
from compressor.core.errors import CompressError
from compressor.core.registry import Registry


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
