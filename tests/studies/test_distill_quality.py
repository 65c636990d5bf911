"""studies.distill_quality: folds, label subsets and the statistics on data with known answers,
and a --quick smoke run that checks the printed tables and the JSON figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from studies.distill_quality import folds, main, mcnemar, mean_std, merge, paired_test
from studies.distill_runs import QUICK_SETTINGS, extra_rows, fold_splits, label_subset


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


def test_mean_std_known_values():
    assert mean_std([0.9, 0.95, 1.0]) == pytest.approx((0.95, 0.05))
    assert mean_std([0.5]) == (0.5, 0.0)


def test_label_subset_is_stratified_fixed_and_small():
    y = np.repeat(np.arange(10), 50)
    keep = label_subset(y, 0.1, seed=0)
    assert len(keep) == 50 and np.bincount(y[keep], minlength=10).tolist() == [5] * 10
    assert keep.tolist() == sorted(set(keep.tolist()))
    assert label_subset(y, 0.1, seed=0).tolist() == keep.tolist()
    assert label_subset(y, 1.0, seed=0).tolist() == list(range(500))
    assert np.bincount(y[label_subset(y, 0.001, seed=0)], minlength=10).min() == 1  # never a class without labels


def test_fold_splits_subset_and_unlabelled_share_the_labelled_images():
    from compressor import data as datasets

    ds = datasets.load_digits()
    idx = folds(ds.y, 5, 0.15)[0]
    full, sub, semi = fold_splits(ds, idx), fold_splits(ds, idx, 0.1), fold_splits(ds, idx, 0.1, "unlabelled")
    n = len(idx[0])
    assert len(full.train) == n and len(sub.train) == round(0.1 * n)
    assert len(semi.train) == n and (semi.train.y >= 0).sum() == len(sub.train)
    labelled = semi.train.x[semi.train.y >= 0]
    assert np.array_equal(labelled, sub.train.x) and np.array_equal(semi.train.y[semi.train.y >= 0], sub.train.y)
    for sp in (full, sub, semi):  # validation and test never change with the label budget
        assert np.array_equal(sp.test.y, ds.y[idx[2]]) and np.array_equal(sp.val.y, ds.y[idx[1]])


def test_merge_puts_each_fold_at_its_test_images():
    r0 = {"fold": 0, "test": np.array([0, 2]), "teachers": {"A": np.array([True, False])},
          "correct": {"x": np.array([[True, True], [False, True]])},
          "info": {"x": {"parameters": 5, "val": [0.5, 0.6], "s_per_epoch": [1.0, 2.0]}}, "chosen_t": {"k": 4.0}}
    r1 = {"fold": 1, "test": np.array([1, 3]), "teachers": {"A": np.array([True, True])},
          "correct": {"x": np.array([[False, False], [True, True]])},
          "info": {"x": {"parameters": 5, "val": [0.7, 0.8], "s_per_epoch": [3.0, 4.0]}}, "chosen_t": {"k": 2.0}}
    m = merge([r1, r0], 4)
    assert m["correct"]["teacher A"].tolist() == [[True, True, False, True]]
    assert m["correct"]["x"].tolist() == [[True, False, True, False], [False, True, True, True]]
    assert m["info"]["x"]["val"] == [0.5, 0.6, 0.7, 0.8] and m["chosen_t"]["k"] == [4.0, 2.0]
    assert m["t_mismatch"] == []
    extras = {"fold": 1, "test": np.array([1, 3]), "teachers": {}, "correct": {}, "info": {}, "chosen_t": {},
              "chosen_t_extras": {"k": 4.0}}  # fold 1's "settings" process chose 2.0
    assert merge([r0, r1, extras], 4)["t_mismatch"] == [(1, "k", 4.0, 2.0)]


@pytest.mark.heavy
@pytest.mark.slow
def test_quick_run_prints_every_row_and_writes_the_figures(tmp_path, capsys):
    out = tmp_path / "q.json"
    assert main(["--quick", "--jobs", "2", "--json", str(out)]) == 0  # 2: each fold split in two processes
    text = capsys.readouterr().out
    for s in QUICK_SETTINGS:
        assert f"| {s.key}" in text
    for label, _, _ in extra_rows():
        assert f"| {label}" in text
    assert "teacher-output cache" in text and "total wall time" in text
    fig = json.loads(out.read_text())
    n = 1797
    for s in QUICK_SETTINGS:
        for arm in ("labels", "KD"):
            c = np.array(fig["correct"][f"{s.key} | {arm}"])
            assert c.shape == (2, n)  # 2 seeds, every image tested once per seed
            assert fig["accuracy"][f"{s.key} | {arm}"] == pytest.approx(c.mean(1).tolist())
        p = fig["paired"][s.key]
        assert p["lo"] <= p["diff"] <= p["hi"] and 0 < p["p"] <= 1 and len(p["mcnemar"]) == 2
        assert len(fig["temperatures_chosen"][s.key]) == 2  # one choice per fold
    assert np.array(fig["correct"]["teacher A"]).shape == (1, n)
    assert fig["timing"]["cached"] > 0 and fig["timing"]["online"] > 0
    assert fig["t_mismatch"] == []  # the split fold's two processes made the same seeded choice


def _run_json(seed: int, teacher: list[int], gain: float) -> dict:
    """A distill_quality --json file: one setting, KD right `gain` more often than labels-only, 2 seeds."""
    rng = np.random.default_rng(seed)
    lab = rng.random((2, 600)) < 0.9
    kd = lab | (rng.random((2, 600)) < gain)
    single_b = rng.random((2, 600)) < 0.9
    return {"settings": [{"key": "s", "label_fraction": 1.0}, {"key": "m", "label_fraction": 0.1}],
            "correct": {"teacher A": [teacher], "s | labels": lab.tolist(), "s | KD": kd.tolist(),
                        "m | labels": lab.tolist(), "m | KD": lab.tolist(), "KD, teacher B alone": single_b.tolist(),
                        "KD, ensemble A+B arithmetic": kd.tolist()}}


def test_pool_stacks_seeds_and_refuses_other_teachers(tmp_path, capsys):
    from studies.distill_pool import comparisons, main, pool

    teacher = [1] * 600
    runs = [_run_json(0, teacher, 0.3), _run_json(1, teacher, 0.3)]
    c = pool(runs)
    assert c["s | KD"].shape == (4, 600) and c["teacher A"].shape == (1, 600)
    rows = dict(comparisons(c, ["s", "m"], "m"))
    assert rows["s: KD vs labels"]["seeds"] == 4 and rows["s: KD vs labels"]["p"] < 0.01
    assert rows["s: KD vs labels"]["diff"] == pytest.approx(c["s | KD"].mean() - c["s | labels"].mean())
    assert rows["m: KD vs labels"]["diff"] == 0.0
    assert "KD, ensemble A+B arithmetic vs KD from teacher B alone" in rows
    files = []
    for i, r in enumerate([*runs, _run_json(2, [0] + teacher[1:], 0.3)]):
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(r))
    assert main([str(files[0]), str(files[1])]) == 0
    assert "s: KD vs labels" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="teacher A differs between the runs"):
        main([str(files[0]), str(files[2])])
