"""Statistics for latency samples: robust summaries, bootstrap intervals and the gate's test.

Latency samples are skewed (a floor set by the hardware, a long tail from the OS and
neighbours), so everything here is built on medians and quantiles, never on means.

The gate's decision (see `slower_than`): a one-sided Mann-Whitney U test of the current
observations against the baseline observations scaled by (1 + threshold). It fails only when
the current run is significantly slower than the allowed budget, not merely slower.
The bootstrap interval of the ratio of medians is reported beside it for the reader.

What an observation is matters (`gate_observations`): samples from one process share that
process's luck (core, cache, neighbours), so they are not independent and a test on them is
over-confident. With >= MIN_PROCESSES fresh processes per side, the observations are the
per-process medians; with fewer, the raw samples (and the verdict says so).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_ALPHA = 0.01
MIN_PROCESSES = 5  # with 5 vs 5, a one-sided Mann-Whitney U can reach p = 1/252 < 0.01
TEST_PROCESS = "one-sided Mann-Whitney U on per-process medians vs baseline x (1 + threshold)"
TEST_SAMPLES = "one-sided Mann-Whitney U on samples vs baseline x (1 + threshold) (< 5 processes per side)"


def _arr(samples: Sequence[float]) -> np.ndarray:
    a = np.asarray(samples, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("no samples")
    return a


def bootstrap_ci_median(samples: Sequence[float], *, confidence: float = 0.95,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median."""
    a = _arr(samples)
    rng = np.random.default_rng(seed)
    meds = np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1)
    lo = (1 - confidence) / 2
    return float(np.quantile(meds, lo)), float(np.quantile(meds, 1 - lo))


def summarize(samples: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """median, IQR, p90, min, max, mean and a bootstrap CI of the median (same unit as the samples)."""
    a = _arr(samples)
    q25, med, q75, p90 = np.quantile(a, [0.25, 0.5, 0.75, 0.9])
    lo, hi = bootstrap_ci_median(a, confidence=confidence, seed=seed)
    return {"n": int(a.size), "median": float(med), "q25": float(q25), "q75": float(q75),
            "iqr": float(q75 - q25), "p90": float(p90), "min": float(a.min()), "max": float(a.max()),
            "mean": float(a.mean()), "ci_low": lo, "ci_high": hi, "confidence": confidence}


def ratio_ci(baseline: Sequence[float], current: Sequence[float], *, confidence: float = 0.95,
             resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """median(current) / median(baseline) with a percentile bootstrap interval (both groups resampled)."""
    a, b = _arr(baseline), _arr(current)
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, size=(resamples, b.size))], axis=1)
    r = mb / ma
    lo = (1 - confidence) / 2
    return float(np.median(b) / np.median(a)), float(np.quantile(r, lo)), float(np.quantile(r, 1 - lo))


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value of Mann-Whitney U for 'x tends to be larger than y'."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(_arr(x), _arr(y), alternative="greater").pvalue)


@dataclass(frozen=True)
class Verdict:
    ratio: float  # median(current) / median(baseline)
    ci_low: float
    ci_high: float
    p_value: float  # H1: current > baseline * (1 + threshold)
    threshold: float  # allowed relative slowdown, e.g. 0.10
    alpha: float
    failed: bool
    test: str = TEST_PROCESS

    def to_dict(self) -> dict:
        return asdict(self)


def gate_observations(samples: Sequence[float], process_medians: Sequence[float] | None) -> tuple[list[float], bool]:
    """(observations, per_process): per-process medians when there are enough, else the samples."""
    if process_medians is not None and len(process_medians) >= MIN_PROCESSES:
        return list(process_medians), True
    return list(samples), False


def slower_than(baseline: Sequence[float], current: Sequence[float], threshold: float, *,
                alpha: float = DEFAULT_ALPHA, confidence: float = 0.95, seed: int = 0,
                per_process: bool = True) -> Verdict:
    """Is `current` slower than `baseline` by more than `threshold`, with significance?

    Both conditions must hold: the ratio of medians exceeds 1 + threshold, and the one-sided
    Mann-Whitney U test rejects 'current is no slower than baseline x (1 + threshold)' at `alpha`.
    Scaling the baseline makes the test about the budget, so a tiny but consistent slowdown
    (significant, yet within budget) does not fail, and neither does a large but noisy one.
    """
    ratio, lo, hi = ratio_ci(baseline, current, confidence=confidence, seed=seed)
    p = mann_whitney_greater(_arr(current), _arr(baseline) * (1.0 + threshold))
    failed = ratio > 1.0 + threshold and p < alpha
    return Verdict(ratio, lo, hi, p, threshold, alpha, bool(failed), TEST_PROCESS if per_process else TEST_SAMPLES)
