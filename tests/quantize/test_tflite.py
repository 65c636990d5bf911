"""The accuracy budget reused for TFLite int8 (exporters/tflite.py's converter, LiteRT interpreter)."""
from __future__ import annotations

import pytest

from compressor.errors import CompressError
from compressor.quantize.budget import Budget

pytestmark = [pytest.mark.tflite, pytest.mark.slow]


@pytest.fixture(scope="module")
def job(teacher, splits, tmp_path_factory):
    from compressor.train import predict
    from exporters.base import ExportJob

    x = splits.test.x[:120]
    return ExportJob(model=teacher.module, example=teacher.example(1), inputs=x, reference=predict(teacher.module, x),
                     calib=splits.train.x[:4], workdir=tmp_path_factory.mktemp("tfl"), labels=splits.test.y[:120])


@pytest.fixture(scope="module")
def saved_model(job):
    from exporters import _tf

    return _tf.saved_model(job)


def test_int8_within_budget_first_try(job, saved_model, splits, tmp_path):
    from compressor.quantize.tflite import int8_within_budget

    out = int8_within_budget(job, saved_model, splits.train.x, Budget(1.0, 0.99), workdir=tmp_path)
    assert out.artifact.suffix == ".tflite" and out.chosen.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.artifact.name]


def test_dim_calibration_falls_back_to_more_samples_or_fails_with_the_table(job, saved_model, splits, tmp_path):
    from compressor.quantize.tflite import int8_within_budget

    pool = splits.train.x.copy()
    pool[:4] *= 0.05  # the first samples are unrepresentative: ranges far too narrow
    try:
        out = int8_within_budget(job, saved_model, pool, Budget(0.0, 0.99), workdir=tmp_path)
    except CompressError as e:
        assert "tried:" in str(e) and "more calibration samples" in str(e)
        assert not list(tmp_path.glob("*.tflite"))
        return
    assert out.fell_back and out.chosen.step == "more calibration samples"
    assert out.trials[0].step == "initial" and not out.trials[0].ok
