"""The statistics helpers of benchmarks.distill_quality: fold construction and the paired tests."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.distill_quality import folds, mcnemar, paired_test


def test_folds_test_every_image_once_and_never_train_on_it():
    y = np.repeat(np.arange(10), 30)
    parts = folds(y, 5, 0.15)
    assert len(parts) == 5
    tested = np.concatenate([te for _, _, te in parts])
    assert sorted(tested) == list(range(len(y)))  # every image held out exactly once
    for tr, va, te in parts:
        assert not (set(tr) & set(va)) and not (set(tr) & set(te)) and not (set(va) & set(te))
        assert len(tr) + len(va) + len(te) == len(y)
        assert np.bincount(y[te], minlength=10).tolist() == [6] * 10  # stratified
        assert np.bincount(y[va], minlength=10).min() >= 3
    assert [p[2].tolist() for p in folds(y, 5, 0.15)] == [p[2].tolist() for p in parts]  # fixed split


def test_mcnemar_counts_discordant_pairs_exactly():
    a = np.array([1, 1, 1, 0, 0, 1, 1], bool)
    b = np.array([1, 0, 0, 1, 0, 1, 0], bool)
    n_a, n_b, p = mcnemar(a, b)
    assert (n_a, n_b) == (3, 1)
    assert p == pytest.approx(0.625)  # two-sided exact binomial, 4 discordant pairs, 3 vs 1
    assert mcnemar(a, a)[2] == 1.0


def test_paired_test_no_difference_and_clear_difference():
    rng = np.random.default_rng(0)
    b = rng.random((3, 400)) < 0.9
    same = paired_test(b, b, n=2000)
    assert same["diff"] == 0 and same["p"] == 1.0
    better = b.copy()
    better[:, :60] = True  # a is right wherever b is, and on more images
    b[:, :60] = False
    res = paired_test(better, b, n=2000)
    assert res["diff"] == pytest.approx(60 / 400)
    assert res["lo"] > 0 and res["p"] < 0.01
    flipped = paired_test(b, better, n=2000)
    assert flipped["hi"] < 0 and flipped["p"] < 0.01
