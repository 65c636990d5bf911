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


def test_ratio_ci_and_mann_whitney_direction():
    a = np.linspace(1.0, 1.1, 50)
    r, lo, hi = stats.ratio_ci(a, 2 * a)
    assert r == pytest.approx(2.0) and lo <= 2.0 <= hi
    assert stats.mann_whitney_greater(2 * a, a) < 1e-6
    assert stats.mann_whitney_greater(a, 2 * a) > 0.99


def test_gate_needs_both_size_and_significance():
    rng = np.random.default_rng(0)
    base = rng.lognormal(0, 0.05, 200)
    assert not stats.slower_than(base, rng.lognormal(0, 0.05, 200), 0.10).failed  # A/A
    assert stats.slower_than(base, 1.5 * rng.lognormal(0, 0.05, 200), 0.10).failed  # 50% slower
    # consistently 3% slower: significant, but within a 10% budget
    assert not stats.slower_than(base, 1.03 * rng.lognormal(0, 0.05, 200), 0.10).failed
    # 2x slower in the medians, but only 3 wildly noisy samples: not significant
    v = stats.slower_than([1.0, 1.1, 0.9], [0.5, 2.0, 9.0], 0.10)
    assert v.ratio > 1.1 and not v.failed


def test_gate_observations_are_process_medians_when_there_are_enough():
    assert stats.gate_observations([1, 2, 3], [2.0] * 5) == ([2.0] * 5, True)
    assert stats.gate_observations([1, 2, 3], [2.0] * 4) == ([1, 2, 3], False)
    # five processes each side, all of B's above A's x 1.1: the smallest p a 5-vs-5 U test can give
    v = stats.slower_than([1.0, 1.01, 0.99, 1.02, 1.03], [2.0, 2.1, 1.9, 2.05, 2.02], 0.10)
    assert v.failed and v.p_value == pytest.approx(1 / 252)


def test_empty_samples_are_an_error():
    with pytest.raises(ValueError):
        stats.summarize([])
