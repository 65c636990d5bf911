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
    # more samples are tried first; whether they or a later stage meet 99% agreement on 120 digits
    # depends on the run (the margin is a sample or two), so only the order and the outcome are fixed
    assert out.fell_back and out.chosen.ok
    assert out.trials[0].step == "initial" and not out.trials[0].ok
    assert out.trials[1].step == "more calibration samples"
    assert out.trials[1].settings.calib_samples > out.trials[0].settings.calib_samples


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


def test_a_failed_layer_ranking_is_a_trial_and_the_budget_error_stays_one_table(job, saved_model, splits, tmp_path,
                                                                              monkeypatch):
    from compressor.core.errors import BudgetError, ConverterError
    from exporters.tflite import int8

    def broken(*_a, **_k):
        raise ConverterError("ranking the layers' int8 error failed on the LiteRT interpreter (boom); give ...")

    monkeypatch.setattr(int8, "_ranked", broken)
    with pytest.raises(BudgetError) as e:
        int8.int8_within_budget(job, saved_model, splits.train.x[:16], AccuracyBudget(-1.0, 1.0), workdir=tmp_path)
    rows = [r for r in str(e.value).splitlines() if r.split()[:1] and r.split()[0].isdigit()]
    assert "sensitive layers in float" in rows[-1] and "error: ranking the layers' int8 error failed" in rows[-1]
    assert not list(tmp_path.glob("*.tflite"))


# A real CNN: ResNet-18 at a tiny width, whose stem max pool has explicit padding (onnx2tf: PADV2 with -3.4e38)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    import torch

    from compressor.architectures import build, recalibrate_bn, smooth_images
    from exporters import tf_route
    from exporters.base import ExportJob

    torch.manual_seed(0)
    m = recalibrate_bn(build("resnet18", num_classes=10, width=1 / 16), smooth_images(64, 32, seed=1))
    x = smooth_images(96, 32, seed=2)
    with torch.no_grad():
        ref = m(x).numpy()
    x = x.numpy()
    job = ExportJob(model=m, example=torch.from_numpy(x[:1]), inputs=x[:32], reference=ref[:32], calib=x[32:40],
                    workdir=tmp_path_factory.mktemp("resnet"), labels=ref[:32].argmax(1))
    return job, tf_route.saved_model(job), x[32:]


def test_max_pool_padding_keeps_int8_ranges_sane_and_xnnpack_runs_it(resnet, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    from compressor.core.budget import Settings
    from compressor.core.errors import ConverterError
    from exporters.tflite import int8

    job, sm, _ = resnet
    it = Interpreter(model_content=int8.quantize(int8.calibrate(sm, job), job, Settings(8)))
    it.allocate_tensors()  # with the default XNNPACK delegate, which refused the model before
    scales = [d["quantization_parameters"]["scales"] for d in it.get_tensor_details()]
    assert max(float(s.max()) for s in scales if len(s)) < 100
    monkeypatch.setattr(int8, "_pad_ranges_fixed", lambda model: model)  # as TFLiteConverter calibrates
    with pytest.raises(ConverterError, match=r"tensor .* got quantization scale \d\.\d+e\+3\d"):
        int8.quantize(int8.calibrate(sm, job), job, Settings(8))  # named, where TFLite's ADD would abort


def test_resnet_int8_goes_through_the_float_layers_stage(resnet, tmp_path, monkeypatch):
    from compressor.core.errors import BudgetError
    from exporters.tflite import int8
    from exporters.tflite.int8 import int8_within_budget

    job, sm, pool = resnet
    # this untrained net already misses agreement 1.0 when only its input is rounded, which skips the search;
    # here the search's stages themselves are under test
    monkeypatch.setattr(int8, "_input_rounding_cause", lambda *a: "")
    with pytest.raises(BudgetError) as e:  # agreement 1.0 cannot be met: every stage runs
        int8_within_budget(job, sm, pool, AccuracyBudget(0.0, 1.0), workdir=tmp_path, max_float_layers=2)
    rows = [r for r in str(e.value).splitlines() if r.split()[:1] and r.split()[0].isdigit()]
    assert [r for r in rows if "2 layer(s) in float" in r] and not [r for r in rows if "error" in r]


def test_a_model_that_int8_input_rounding_breaks_is_named_as_the_cause(tmp_path):
    """MobileNetV2 with BatchNorm recalibrated on images (untrained, gains up to 120) lost 31 points in int8:
    not a conversion fault, the float model itself lost 21 points when only its input was rounded to int8's
    grid. Here classes differ by 1/50 of an int8 input step; the budget error must say that, not only
    "give more --calib data"."""
    import numpy as np
    import torch

    from compressor.core.errors import BudgetError
    from exporters import tf_route
    from exporters.base import ExportJob
    from exporters.tflite.int8 import int8_within_budget

    rng = np.random.default_rng(0)
    base = rng.uniform(-2, 2, (1, 3, 8, 8)).astype(np.float32)
    patterns = rng.choice([-1.0, 1.0], (10, 3, 8, 8)).astype(np.float32)
    y = np.arange(60) % 10
    x = (base + 3e-4 * patterns[y] + 1e-5 * rng.standard_normal((60, 3, 8, 8))).astype(np.float32)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 8), torch.nn.Flatten()).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(patterns))
        model[0].bias.copy_(-torch.from_numpy((patterns * base).sum((1, 2, 3))))
        ref = model(torch.from_numpy(x)).numpy()
    assert (ref.argmax(1) == y).all()  # float: every class told apart
    job = ExportJob(model=model, example=torch.from_numpy(x[:1]), inputs=x[:40], reference=ref[:40], calib=x[40:48],
                    workdir=tmp_path, labels=y[:40])
    # found before any int8 model is made: the search would take minutes on a real CNN and cannot succeed
    with pytest.raises(BudgetError, match=r"no int8 model was tried:\ncause: the float model itself agrees only "
                                          r"\d+\.\d+% .* input is rounded"):
        int8_within_budget(job, tf_route.saved_model(job), x[40:], AccuracyBudget(1.0, 0.99), workdir=tmp_path / "w",
                           max_float_layers=1)
    assert not list((tmp_path / "w").glob("*.tflite"))


@pytest.mark.slow
def test_a_default_int8_that_misses_its_budget_is_skipped_with_the_reason(tmp_path, monkeypatch):
    """One failing default variant never throws the others away; asked for by name, it fails the run."""
    import dataclasses

    import numpy as np
    import torch

    from compressor.core.errors import BudgetError, ConverterError
    from exporters import tflite
    from exporters.base import ExportJob, ExportOptions, Shared

    def missed(*_a, **_k):
        raise BudgetError("tflite int8 cannot meet the accuracy budget (drop <= 1.0 points); tried:\n1 ...\n"
                          "cause: the float model itself agrees only 79.17% with PyTorch ...")
    monkeypatch.setattr(tflite, "_int8_within_budget", missed)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 5)).eval()
    x = np.random.default_rng(0).standard_normal((12, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    job = ExportJob(model=model, example=torch.from_numpy(x[:1]), inputs=x, reference=ref, calib=x, workdir=tmp_path,
                    options=ExportOptions(max_accuracy_drop=1.0))
    made = tflite.export(job)
    assert [a.variant for a in made] == ["float32", "float16", "dynamic-int8"]
    assert job.shared.skipped["tflite:int8"].startswith("tflite int8 cannot meet the accuracy budget")
    assert "cause: the float model itself" in job.shared.skipped["tflite:int8"]
    named = dataclasses.replace(job, options=ExportOptions(max_accuracy_drop=1.0, variants=("int8",)))
    with pytest.raises(BudgetError):
        tflite.export(named)
    # a converter that refuses a default variant: that variant is skipped, named in one line, the rest ship
    convert = tflite.convert_cached

    def refuses_float16(sm, variant, job, path):
        if variant == "float16":
            raise ConverterError("TFLite float16: operator PADV2 (layer 'pool') has no float16 kernel")
        return convert(sm, variant, job, path)
    monkeypatch.setattr(tflite, "convert_cached", refuses_float16)
    again = dataclasses.replace(job, workdir=tmp_path / "again", shared=Shared())
    again.workdir.mkdir()
    assert [a.variant for a in tflite.export(again)] == ["float32", "dynamic-int8"]
    assert again.shared.skipped["tflite:float16"] == "TFLite float16: operator PADV2 (layer 'pool') has no float16 kernel"
    assert not (again.workdir / "tflite" / "model_float16.tflite").exists()
