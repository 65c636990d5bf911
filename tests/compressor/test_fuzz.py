"""Arbitrary input to the loaders and the argument parser only ever gives the tool's own errors."""
import io
import zipfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressor.cli import config_from_args, run_parser
from compressor.config import RunConfig, from_mapping
from compressor.core.errors import CompressError
from compressor.loading import load_model

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.binary(max_size=4096))
def test_loader_on_random_bytes(tmp_path, blob):
    p = tmp_path / "model.pt"
    p.write_bytes(blob)
    with pytest.raises(CompressError):
        load_model(p)


@FAST
@given(st.dictionaries(st.sampled_from(["a/data.pkl", "a/code/x.py", "a/constants.pkl", "a/archive_format",
                                        "a/version", "a/data/0"]), st.binary(max_size=256), min_size=1))
def test_loader_on_random_zip_archives(tmp_path, entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    p = tmp_path / "model.pt"
    p.write_bytes(buf.getvalue())
    with pytest.raises(CompressError):
        load_model(p, arch="compressor.models:DigitsCNN")


OPTIONS = ["--target", "--out", "--data", "--input-shape", "--calib", "--layout", "--tfjs-quant",
           "--parity-samples", "--seed", "--overwrite", "--trust-model"]


@FAST
@given(st.lists(st.one_of(st.sampled_from(OPTIONS), st.text(max_size=12)), max_size=8))
def test_argument_parsing(argv):
    try:
        a = run_parser().parse_args(["model.pt", *argv])
    except SystemExit as e:  # argparse's own usage error
        assert e.code == 2
        return
    try:
        cfg = config_from_args(a, a.model)
    except CompressError:
        return
    assert isinstance(cfg, RunConfig)


@FAST
@given(st.one_of(st.text(max_size=200),
                 st.dictionaries(st.sampled_from(["student", "ratio", "methods", "weights", "temperature", "epochs",
                                                  "alpha", "hints", "distill", "colour"]),
                                 st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                                           st.lists(st.text(max_size=5), max_size=3)), max_size=5)
                 .map(yaml.safe_dump)))
def test_recipe_loader(text):
    """The project's recipe loader on arbitrary text and on near-valid recipes: a config or our own error."""
    from compressor.distill import recipe

    try:
        recipe.parse(text)
    except CompressError:
        pass


@FAST
@given(st.text(max_size=200))
def test_run_config_from_arbitrary_yaml(text):
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    try:
        from_mapping(RunConfig, data)
    except CompressError:
        pass


def test_yaml_tags_that_run_code_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    text = f"model: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(text)
    assert not marker.exists()


DTYPES = ["uint8", "int8", "int64", "uint64", "float16", "float64", "complex64", "bool", "U2"]


@FAST
@given(x_dtype=st.sampled_from(DTYPES), x_shape=st.lists(st.integers(0, 5), min_size=0, max_size=4),
       y=st.one_of(st.none(), st.lists(st.integers(-3, 2**62), max_size=6)),
       input_dtype=st.sampled_from(["float32", "int64"]), num_classes=st.one_of(st.none(), st.integers(1, 12)))
def test_npz_loader_on_arbitrary_arrays(tmp_path, x_dtype, x_shape, y, input_dtype, num_classes):
    """Any dtype, shape and labels (up to 2**62): a Dataset the model can take, or our own error."""
    import numpy as np

    from compressor import data

    p = tmp_path / "d.npz"
    arrays = {"x": np.zeros(x_shape, x_dtype)} | ({} if y is None else {"y": np.array(y, np.int64)})
    np.savez(p, **arrays)
    try:
        d = data.load(str(p), input_dtype=input_dtype, num_classes=num_classes)
    except CompressError:
        return
    assert d.x.dtype == np.dtype(input_dtype) and len(d) > 0
    assert d.y is None or (d.y.dtype == np.int64 and (num_classes is None or d.y.max() < num_classes))
