"""The accuracy budget's search, with stand-in `make`/`evaluate` callables (format-independent)."""
from __future__ import annotations

import pytest

from compressor.core.budget import AccuracyBudget, Measure, Settings, default_stages, judge, search
from compressor.core.errors import CompressError
from compressor.quantize.config import CALIB_METHODS

REF = 0.95  # float model accuracy
START = Settings(calib_samples=50)
BUDGET = AccuracyBudget(1.0, 0.99)


def run(score, initial=START, budget=BUDGET, max_float_layers=2):
    """search() where `score(settings) -> (accuracy, agreement)`; sensitivity ranks layers c, a, b."""
    stages = default_stages(max_calib=1000, methods=CALIB_METHODS, sensitivity=lambda s: ["c", "a", "b"],
                            max_float_layers=max_float_layers)
    return search(initial, make=lambda s: s, evaluate=lambda s: Measure(*score(s)), budget=budget,
                  reference_accuracy=REF, stages=stages)


def test_judge_counts_points_and_agreement():
    assert judge(Measure(0.94, 0.995), REF, AccuracyBudget(1.0, 0.99)) == (1.0, True)
    assert judge(Measure(0.93, 0.995), REF, AccuracyBudget(1.0, 0.99))[1] is False
    assert judge(Measure(0.95, 0.98), REF, AccuracyBudget(1.0, 0.99))[1] is False
    assert judge(Measure(None, 0.995), None, AccuracyBudget(0.0, 0.99)) == (None, True)  # unlabelled: agreement only


def test_first_settings_within_budget_are_kept():
    out = run(lambda s: (0.95, 1.0))
    assert not out.fell_back and len(out.trials) == 1 and out.chosen.step == "initial"


def test_more_calibration_samples_come_first():
    out = run(lambda s: (0.95, 1.0) if s.calib_samples >= 800 else (0.90, 0.95))
    assert out.fell_back
    # 50 -> 200 -> 800: four times more at each try, up to the training split
    assert [(t.step, t.settings.calib_samples) for t in out.trials] == [
        ("initial", 50), ("more calibration samples", 200), ("more calibration samples", 800)]
    assert out.artifact.calib_samples == 800


def test_then_another_method_then_channel_and_range_settings():
    out = run(lambda s: (0.95, 1.0) if s.scheme == "u8u8" else (0.90, 0.95))
    steps = [t.step for t in out.trials]
    assert steps.index("more calibration samples") < steps.index("another calibration method") \
        < steps.index("per-channel / reduce-range / scheme")
    assert out.chosen.step == "per-channel / reduce-range / scheme" and out.artifact.scheme == "u8u8"


def test_sensitive_layers_in_float_last_most_sensitive_first():
    out = run(lambda s: (0.95, 1.0) if {"c", "a"} <= set(s.float_layers) else (0.90, 0.95))
    assert out.chosen.step == "sensitive layers in float"
    assert out.artifact.float_layers == ("c", "a")


def test_nothing_fits_fails_with_the_table_of_trials():
    with pytest.raises(CompressError) as e:
        run(lambda s: (0.50, 0.5), max_float_layers=1)
    msg = str(e.value)
    assert "cannot meet the accuracy budget" in msg and "tried:" in msg
    for step in ("initial", "more calibration samples", "another calibration method",
                 "per-channel / reduce-range / scheme", "sensitive layers in float"):
        assert step in msg
    assert msg.count("over budget") >= 8


def test_a_failing_build_is_a_row_not_a_crash():
    def score(s):
        if s.calib_method == "entropy":
            raise CompressError("boom")
        return (0.95, 1.0) if s.calib_method == "percentile" else (0.9, 0.9)
    out = run(score)
    assert any(t.error == "boom" for t in out.trials)
    assert out.artifact.calib_method == "percentile"


def test_the_advice_names_only_the_options_that_apply():
    from compressor.core.budget import BudgetError

    budget = AccuracyBudget(max_accuracy_drop=1.0, min_agreement=0.995)
    unlabelled = lambda _art: Measure(None, 0.9)
    with pytest.raises(BudgetError) as e:
        search(Settings(10, "minmax", True, "s8s8"), lambda s: s, unlabelled, budget, None,
               skip="leave int8 out of --variants")
    last = str(e.value).splitlines()[-1]
    assert "no labels" in last and "--max-accuracy-drop" not in last
    assert "lower --min-agreement (now 0.995)" in last and last.endswith("or leave int8 out of --variants")
    with pytest.raises(BudgetError) as e:
        search(Settings(10, "minmax", True, "s8s8"), lambda s: s, lambda _a: Measure(0.5, 0.9), budget, 0.9)
    assert "raise --max-accuracy-drop (now 1.0)" in str(e.value).splitlines()[-1]


def test_min_agreement_flag_reaches_int8_budgets():
    from compressor.cli import build_parser
    from compressor.cli_options import config_from_args

    def cfg(*flags: str):
        a = build_parser("export", False).parse_args(["export", "m.pt", *flags])
        return config_from_args(a, "m.pt")

    c = cfg("--quantize", "int8", "--min-agreement", "0.9")
    assert c.export.min_agreement == 0.9 and c.quantize.min_agreement == 0.9
    assert cfg("--quantize", "qat").quantize.min_agreement == 0.0  # QAT's own default stays
