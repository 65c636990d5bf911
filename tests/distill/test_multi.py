"""Distilling models with several inputs (packed arrays, a field per input) and several outputs (one distilled)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compressor import data as datasets
from compressor.core import feeds
from compressor.core.errors import CompressError
from compressor.distill import batches, targets
from compressor.distill.config import DistillConfig
from compressor.distill.engine import distill
from compressor.loading import finish, module_hash

ROOT = Path(__file__).resolve().parents[2]


class TwoInTwoOut(nn.Module):
    """features (N, 6) float and a mask (N, 6) int -> class scores (N, 3) and an embedding (N, 4)."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.proj = nn.Linear(6, hidden)
        self.body = nn.ModuleList([nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)])
        self.cls, self.emb = nn.Linear(hidden, 3), nn.Linear(hidden, 4)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.proj(features * mask.float())
        for layer in self.body:
            h = torch.relu(layer(h))
        return self.cls(h), self.emb(h)


def loaded(module: nn.Module):
    return finish(module, kind="python", source="two", sha=module_hash(module), meta={}, input_shape=None,
                  task="logits,embedding", inputs=[("features", (1, 6), "float32"), ("mask", (1, 6), "int64")])


def packed(n: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return feeds.pack({"features": rng.standard_normal((n, 6)).astype(np.float32),
                       "mask": (rng.random((n, 6)) > 0.2).astype(np.int64)})


def test_take_indexes_every_input_by_the_same_rows():
    x = packed(10)
    xs = batches.take(x, torch.tensor([3, 1]))
    assert [t.dtype for t in xs] == [torch.float32, torch.int64] and [t.shape for t in xs] == [(2, 6), (2, 6)]
    assert torch.equal(xs[0][0], torch.from_numpy(x["features"][3])) and torch.equal(xs[1][1], torch.from_numpy(x["mask"][1]))
    sl = batches.take(x, slice(2, 5))
    assert torch.equal(sl[1], torch.from_numpy(x["mask"][2:5]))
    plain = np.arange(12, dtype=np.float32).reshape(4, 3)
    (only,) = batches.take(plain, np.array([2]))
    assert only.tolist() == [[6, 7, 8]]
    assert batches.rows(xs, torch.tensor([1]))[0].shape == (1, 6)


def test_pick_and_choose_output():
    t = loaded(TwoInTwoOut().eval())
    assert batches.choose_output(t, None) == (0, "output_0", "logits")
    assert batches.choose_output(t, "output_1") == (1, "output_1", "embedding")
    with pytest.raises(CompressError, match="has no such output; choose from: output_0, output_1"):
        batches.choose_output(t, "logits")
    out = (torch.zeros(2, 3), torch.ones(2, 4))
    assert batches.pick(out, 1).shape == (2, 4) and batches.pick(out[0], 0).shape == (2, 3)
    arr = feeds.pack({"a": np.zeros((2, 3), np.float32), "b": np.ones((2, 4), np.float32)})
    assert batches.pick_array(arr, 1).shape == (2, 4) and batches.pick_array(np.zeros((2, 3)), 0).shape == (2, 3)


def test_the_cache_keeps_every_output_and_serves_the_chosen_one(tmp_path):
    torch.manual_seed(0)
    t = loaded(TwoInTwoOut().eval())
    x = packed(50)
    got = targets.outputs(t.module, x, [])
    assert set(got) == {"logits", "output_1"} and got["output_1"].shape == (50, 4)
    fn, _ = targets.cached([(t.module, t.sha256)], x, [], tmp_path, 4.0, "arithmetic", "embedding", output=1)
    idx = torch.tensor([4, 0])
    online = targets.online([t.module], [], 4.0, "arithmetic", "embedding", output=1)
    torch.testing.assert_close(fn(idx, batches.take(x, idx))[0], online(idx, batches.take(x, idx))[0])


@pytest.mark.parametrize("output, kind, metric", [(None, "logits", "top-1 agreement"),
                                                  ("output_1", "embedding", "mean cosine")])
def test_two_input_teacher_distils_the_chosen_output(tmp_path, output, kind, metric):
    torch.manual_seed(0)
    teacher = loaded(TwoInTwoOut(32).eval())
    sp = datasets.split(datasets.Dataset(packed(), None, (), "packed"), seed=0)
    student = tmp_path / "s.pt"
    torch.manual_seed(1)
    torch.save(TwoInTwoOut(8), student)
    cfg = DistillConfig(student=str(student), epochs=3, distill_output=output, cache_dir=str(tmp_path / "c"),
                        checkpoint_dir=str(tmp_path / "r"))
    out = distill(teacher, sp, cfg, trust_model=True)
    assert out.kind == kind and out.output == (output or "output_0") and out.check["metric"] == metric
    assert out.stages[0]["epochs_run"] == 3 and out.check["kept"] is not None
    assert isinstance(out.student(*batches.take(sp.test.x, slice(0, 2))), tuple)


def test_layer_dropped_student_of_a_two_input_teacher():
    t = loaded(TwoInTwoOut().eval())
    from compressor.distill import layers

    s, info = layers.drop_layers(t.module, 1)
    assert info["stack"] == "body" and info["kept_layers"] == [1]
    assert len(s.inner.body) == 1 and s(*batches.take(packed(3), slice(None)))[1].shape == (3, 4)


def run_cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "compressor.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["pickle", "state_dict"])
def test_bert_layers_student_end_to_end(tmp_path, form):
    """A BERT-style encoder (input_ids + attention_mask -> last_hidden_state, pooler_output) -> 1 of its 2 layers
    -> ONNX, parity-checked; the manifest records the output distilled and the budget's tries."""
    pytest.importorskip("transformers")
    from tests.distill.tiny_bert import TinyBert

    torch.manual_seed(0)
    bert = TinyBert().eval()
    if form == "pickle":
        torch.save(bert, tmp_path / "bert.pt")
        how = ["--trust-model"]
    else:
        torch.save(bert.state_dict(), tmp_path / "bert.pt")
        how = ["--arch", "tests.distill.tiny_bert:TinyBert"]
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tokens.npz", input_ids=rng.integers(0, 100, (200, 8)), attention_mask=np.ones((200, 8), int))
    r = run_cli("bert.pt", *how, "--input", "input_ids:1x8:int64", "--input", "attention_mask:1x8:int64",
                "--student", "layers:1", "--data", "tokens.npz", "--target", "onnx", "--epochs", "2",
                "--min-kept", "0.9", "--teacher-cache-dir", "cache", "--checkpoint-dir", "ck", "--out", "out",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    d, s = m["distillation"], m["student"]
    assert d["output"] == "last_hidden_state" and d["output_kind"] == "regression"
    assert d["budget"]["metric"] == "explained variance" and d["budget"]["chosen"] == 0
    assert d["budget"]["tries"][0]["kept"] >= 0.9
    assert s["made_by"]["stack"] == "encoder.layer" and s["made_by"]["kept_layers"] == [1]
    assert s["parameters"] < m["teacher"]["parameters"]
    onnx = [a for a in m["artifacts"] if a["format"] == "onnx"]
    assert onnx and all(a["parity"]["passed"] for a in onnx)
    from compressor.loading import load_model

    back = load_model(tmp_path / "out" / "student.pt")
    assert [i.name for i in back.inputs] == ["input_ids", "attention_mask"] and len(back.outputs) == 2
