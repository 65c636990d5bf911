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
