"""TFLite full-integer int8 is held to the accuracy budget (compressor.quantize's search)."""
import dataclasses

import pytest

from compressor import data, demo
from compressor.evaluate import predict
from exporters import tflite
from exporters.base import ExportJob, ExportOptions


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.tflite
def test_int8_variant_records_its_budget_search(tmp_path):
    teacher = demo.teacher()
    splits = data.split(data.load_digits(), seed=0)
    x, y = splits.test.x, splits.test.y
    job = ExportJob(model=teacher.module, example=teacher.example(1), inputs=x, reference=predict(teacher.module, x),
                    calib=splits.train.x[:8], calib_pool=splits.train.x, workdir=tmp_path, labels=y,
                    options=ExportOptions(variants=("int8",), max_accuracy_drop=1.0))
    [a] = tflite.export(job)
    a.parity = tflite.validate(a, job)
    assert a.extra["budget"] == {"max_accuracy_drop": 1.0, "min_agreement": 0.99}
    assert any(t["ok"] for t in a.extra["trials"]) and a.extra["chosen_by"]
    assert a.parity.accuracy_drop_points <= 1.0 and a.parity.top1_agreement >= 0.99
    assert a.extra["calibration_samples"] >= 8
    assert list((tmp_path / "tflite").iterdir()) == [a.path]  # the other trials' files are gone
    with pytest.raises(ValueError, match="must be >= 0"):
        dataclasses.replace(job.options, max_accuracy_drop=-1)
