"""The accuracy budget reused for TFLite int8 (exporters/tflite's converter, LiteRT interpreter)."""
from __future__ import annotations

import pytest

from compressor.core.budget import AccuracyBudget
from compressor.core.errors import CompressError

pytestmark = [pytest.mark.tflite, pytest.mark.slow]


@pytest.fixture(scope="module")
def job(teacher, splits, tmp_path_factory):
    from compressor.evaluate import predict
    from exporters.base import ExportJob

    x = splits.test.x[:120]
    return ExportJob(model=teacher.module, example=teacher.example(1), inputs=x, reference=predict(teacher.module, x),
                     calib=splits.train.x[:4], workdir=tmp_path_factory.mktemp("tfl"), labels=splits.test.y[:120])


@pytest.fixture(scope="module")
def saved_model(job):
    from exporters import tf_route

    return tf_route.saved_model(job)


def test_int8_within_budget_first_try(job, saved_model, splits, tmp_path):
    from exporters.tflite.int8 import int8_within_budget

    out = int8_within_budget(job, saved_model, splits.train.x, AccuracyBudget(1.0, 0.99), workdir=tmp_path)
    assert out.artifact.suffix == ".tflite" and out.chosen.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.artifact.name]


def test_dim_calibration_falls_back_to_more_samples_or_fails_with_the_table(job, saved_model, splits, tmp_path):
    from exporters.tflite.int8 import int8_within_budget

    pool = splits.train.x.copy()
    pool[:4] *= 0.05  # the first samples are unrepresentative: ranges far too narrow
    try:
        out = int8_within_budget(job, saved_model, pool, AccuracyBudget(0.0, 0.99), workdir=tmp_path)
    except CompressError as e:
        assert "tried:" in str(e) and "more calibration samples" in str(e)
        assert not list(tmp_path.glob("*.tflite"))
        return
    assert out.fell_back and out.chosen.step == "more calibration samples"
    assert out.trials[0].step == "initial" and not out.trials[0].ok


def test_every_fallback_is_tried_before_the_budget_fails(job, saved_model, splits, tmp_path):
    from exporters.tflite.int8 import int8_within_budget

    with pytest.raises(CompressError) as e:  # a drop <= -1 point cannot be met: every stage runs
        int8_within_budget(job, saved_model, splits.train.x[:16], AccuracyBudget(-1.0, 1.0), workdir=tmp_path,
                           max_float_layers=2)
    text = str(e.value)
    for step in ("initial", "more calibration samples", "per-tensor", "sensitive layers in float",
                 "2 layer(s) in float"):
        assert step in text
    assert not list(tmp_path.glob("*.tflite"))


def test_sensitive_layers_are_ranked_and_kept_in_float(job, saved_model, tmp_path):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from compressor.core.budget import Settings
    from exporters.tflite.int8 import layer_errors, selective

    s = Settings(4, "minmax", True, "s8s8")
    ranked = layer_errors(saved_model, job, s)
    assert len(ranked) >= 5 and all(score >= 0 for _, score in ranked)
    assert [v for _, v in ranked] == sorted((v for _, v in ranked), reverse=True)
    worst = ranked[0][0]
    path = tmp_path / "mixed.tflite"
    path.write_bytes(selective(saved_model, job, Settings(4, "minmax", True, "s8s8", float_layers=(worst,))))
    it = Interpreter(model_path=str(path))
    dtypes = {d["name"]: d["dtype"] for d in it.get_tensor_details()}
    assert dtypes[worst] == np.float32  # the denylisted layer computes in float ...
    assert np.int8 in set(dtypes.values())  # ... the others in int8
    assert "DEQUANTIZE" in {op["op_name"] for op in it._get_ops_details()}
