import json
import multiprocessing as mp

import numpy as np

from compressor.distill import cache


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"logits": rng.normal(size=(50, 10)).astype(np.float32),
            "features.3": rng.normal(size=(50, 4, 2, 2)).astype(np.float32)}


def test_roundtrip_is_memory_mapped(tmp_path):
    cache.write(tmp_path, "k", arrays())
    got = cache.read(tmp_path, "k")
    assert set(got) == {"logits", "features.3"}
    assert isinstance(got["logits"], np.memmap) and not got["logits"].flags.writeable
    np.testing.assert_array_equal(got["features.3"], arrays()["features.3"])
    assert cache.read(tmp_path, "other") is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_keys_follow_teacher_data_and_features():
    x = np.zeros((3, 1, 8, 8), np.float32)
    d = cache.data_hash(x)
    assert d != cache.data_hash(x + 1) and d != cache.data_hash(x.reshape(3, 64))
    k = cache.make_key("t1", d, ["a"])
    assert len({k, cache.make_key("t2", d, ["a"]), cache.make_key("t1", d, []), cache.make_key("t1", "d2", ["a"])}) == 4
    assert k == cache.make_key("t1", d, ["a"])


def test_damaged_entry_is_recomputed(tmp_path):
    cache.write(tmp_path, "k", arrays())
    meta = json.loads((tmp_path / "k" / "meta.json").read_text())
    f = tmp_path / "k" / meta["arrays"]["logits"]["file"]
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 0xFF
    f.write_bytes(bytes(raw))
    assert cache.read(tmp_path, "k") is None
    calls = []
    got = cache.get_or_compute(tmp_path, "k", lambda: calls.append(1) or arrays())
    assert calls == [1]
    np.testing.assert_array_equal(got["logits"], arrays()["logits"])
    cache.get_or_compute(tmp_path, "k", lambda: calls.append(2) or arrays())
    assert calls == [1]  # now a hit


def _writer(root: str, n: int) -> int:
    ok = 0
    for _ in range(n):
        got = cache.get_or_compute(root, "shared", arrays)
        ok += int(np.array_equal(got["logits"], arrays()["logits"]))
        cache.write(root, "shared", arrays())  # racing rewrites of the same key must not break readers
    return ok


def test_concurrent_writers_and_readers(tmp_path):
    with mp.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(_writer, [(str(tmp_path), 15)] * 3)
    assert results == [15, 15, 15]
    assert cache.read(tmp_path, "shared") is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
