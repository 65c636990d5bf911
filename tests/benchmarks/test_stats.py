import numpy as np
import pytest

from benchmarks import stats


def test_summary_of_known_samples():
    s = stats.summarize(list(range(1, 10)))  # 1..9
    assert s["median"] == 5 and s["min"] == 1 and s["max"] == 9 and s["n"] == 9
    assert s["q25"] == 3 and s["q75"] == 7 and s["iqr"] == 4
    assert s["p90"] == pytest.approx(8.2)
    assert s["ci_low"] <= 5 <= s["ci_high"]


def test_bootstrap_ci_of_constant_samples_is_a_point_and_widens_with_noise():
    assert stats.bootstrap_ci_median([2.0] * 50) == (2.0, 2.0)
    rng = np.random.default_rng(1)
    narrow = stats.bootstrap_ci_median(rng.normal(10, 0.1, 400))
    wide = stats.bootstrap_ci_median(rng.normal(10, 2.0, 400))
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert narrow[0] < 10 < narrow[1]


def test_ratio_ci_direction():
    a = np.linspace(1.0, 1.1, 50)
    r, lo, hi = stats.ratio_ci(a, 2 * a)
    assert r == pytest.approx(2.0) and lo <= 2.0 <= hi


def test_gate_compares_the_best_process_of_each_side():
    rng = np.random.default_rng(0)
    base = rng.lognormal(0, 0.05, 6)
    assert not stats.slower_than(base, rng.lognormal(0, 0.05, 6), 0.10).failed  # A/A
    assert stats.slower_than(base, 1.5 * rng.lognormal(0, 0.05, 6), 0.10).failed  # 50% slower
    assert not stats.slower_than(base, 1.03 * base, 0.10).failed  # consistently 3% slower: within a 10% budget
    # the shared machine's speed modes: most current processes were disturbed, one was not -> no alarm
    modes = [39.6, 49.3, 55.7, 60.2, 60.3, 40.1]
    v = stats.slower_than([39.1, 48.3, 46.3, 45.5, 39.2, 39.5], modes, 0.10)
    assert v.median_ratio > 1.1 and v.ratio == pytest.approx(39.6 / 39.1) and not v.failed
    # 17% slower in its best process, although its median process looks no slower than the baseline's
    v = stats.slower_than([39.1, 48.3, 46.3, 45.5, 39.2, 39.5], [46.3, 63.4, 45.6, 46.0, 57.1, 46.0], 0.10)
    assert v.failed and v.ratio == pytest.approx(45.6 / 39.1)


def test_gate_observations_are_one_per_process_when_there_are_enough():
    row = {"samples_ms": [1, 2, 3], "process_medians_ms": [2.0] * 5, "process_p25_ms": [1.5] * 5}
    assert stats.gate_observations(row, row) == ([1.5] * 5, [1.5] * 5, stats.TEST_PROCESS)
    old = {"samples_ms": [1, 2, 3], "process_medians_ms": [2.0] * 5}  # a baseline from before the quartiles
    assert stats.gate_observations(old, row) == ([2.0] * 5, [2.0] * 5, stats.TEST_PROCESS_MEDIANS)
    few = {"samples_ms": [1, 2, 3], "process_medians_ms": [2.0] * 4, "process_p25_ms": [1.5] * 4}
    assert stats.gate_observations(few, row) == ([1, 2, 3], [1, 2, 3], stats.TEST_SAMPLES)
    # raw samples of one process per side, or a row on all cores: the ratio is reported, the row never fails
    for test in (stats.TEST_SAMPLES, stats.TEST_ALL_CORES):
        v = stats.slower_than([1.0] * 50, [2.0] * 50, 0.10, test=test)
        assert v.ratio == 2.0 and not v.failed


def test_median_interval_over_processes_is_order_statistics():
    assert stats.median_ci_processes([3.0, 1.0, 2.0, 5.0, 4.0, 6.0]) == (1.0, 6.0, pytest.approx(31 / 32))
    lo, hi, cover = stats.median_ci_processes(list(range(1, 10)))  # 9 processes: [x(2), x(8)], 96.1%
    assert (lo, hi) == (2, 8) and cover == pytest.approx(1 - 20 / 512)
    assert stats.median_ci_processes([1.0, 2.0, 3.0, 4.0, 5.0])[2] == pytest.approx(0.9375)  # says it is short
    # the lower quartile of a two-mode process stays in the first mode; its median does not
    samples = [30.0] * 52 + [34.0] * 48
    assert stats.process_stat(samples) == 30.0 and stats.process_stat(samples[4:] + [34.0] * 4) == 30.0


def test_empty_samples_are_an_error():
    with pytest.raises(ValueError):
        stats.summarize([])
