"""--student auto on transformers (issue 15): keep the hidden size, remove whole attention heads and MLP width."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from compressor.core.errors import CompressError
from compressor.core.signature import Flat
from compressor.distill import students

pytest.importorskip("transformers")
from tests.distill.tiny_bert import TinyBert


def tiny_bert() -> tuple[Flat, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = Flat(TinyBert().eval(), ["input_ids", "attention_mask"], True)
    return model, (torch.randint(0, 100, (1, 12)), torch.ones(1, 12, dtype=torch.long))


def feed(b: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(0, 100, (b, 12)), torch.ones(b, 12, dtype=torch.long)


def test_pruned_bert_keeps_whole_heads_and_trains_at_any_batch():
    t, ex = tiny_bert()
    info: dict = {}
    s = students.auto_student(t, ex, 0.5, info=info)
    n_t, n_s = students.count_params(t), students.count_params(s)
    assert 0.35 * n_t < n_s <= 0.5 * n_t
    cfg = s.inner.config
    assert cfg.hidden_size == 32 and s.inner.embeddings.word_embeddings.embedding_dim == 32  # hidden size kept
    for layer in s.inner.encoder.layer:
        a = layer.attention.self
        assert a.attention_head_size == 16  # whole heads: each keeps its width
        assert a.query.out_features == a.key.out_features == a.value.out_features == a.num_attention_heads * 16
        assert a.all_head_size == a.query.out_features and a.num_attention_heads == 1
        assert layer.attention.output.dense.out_features == 32 and layer.output.dense.out_features == 32
        assert layer.intermediate.dense.out_features == cfg.intermediate_size < 64
    assert cfg.num_attention_heads == 1  # the config tells the truth (all layers agree)
    assert info == {"heads_per_layer": [1, 1], "head_size": 16, "hidden_size_kept": 32,
                    "mlp_width_per_layer": [cfg.intermediate_size] * 2}
    assert t.inner.config.num_attention_heads == 2 and t.inner.encoder.layer[0].attention.self.query.out_features == 32
    s.train()
    for b in (3, 5):
        hidden, pooled = s(*feed(b))
        assert hidden.shape == (b, 12, 32) and pooled.shape == (b, 32)
        (hidden.square().mean() + pooled.sum()).backward()
        assert all(p.grad is not None for p in s.parameters() if p.requires_grad)
        s.zero_grad()


def test_head_ratio_never_removes_the_last_head():
    assert students._head_ratio(2, 0.99) == pytest.approx(0.25)  # ceil(0.25 * 2) = 1 of 2 heads
    assert students._head_ratio(12, 0.64) == pytest.approx(7.5 / 12)  # ceil(7.5) = 8 of 12 heads
    assert students._head_ratio(12, 0.01) == 0.0


class TorchEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1,
                                         enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(x).mean(1))


def test_torch_multihead_attention_is_refused_in_one_line():
    with pytest.raises(CompressError, match=r"TransformerEncoderLayer .*--student layers:K") as e:
        students.auto_student(TorchEncoder().eval(), torch.zeros(1, 5, 16), 0.5)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_pruned_bert_student_end_to_end(tmp_path):
    """The issue-15 command: a BertModel, --student auto --ratio 0.5 -> ONNX, parity-checked; the manifest says
    which heads and MLP width were kept."""
    from tests.distill.test_multi import run_cli

    torch.manual_seed(0)
    torch.save(TinyBert().eval().state_dict(), tmp_path / "bert.pt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", input_ids=rng.integers(0, 100, (200, 12)), attention_mask=np.ones((200, 12), int))
    r = run_cli("bert.pt", "--arch", "tests.distill.tiny_bert:TinyBert", "--input", "input_ids:1,12:int64",
                "--input", "attention_mask:1,12:int64", "--data", "d.npz", "--task", "embed", "--student", "auto",
                "--ratio", "0.5", "--epochs", "2", "--target", "onnx", "--checkpoint-dir", "ck", "--out", "out",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    s = m["student"]
    assert s["parameters"] <= 0.5 * m["teacher"]["parameters"]
    assert s["made_by"]["kind"] == "pruned" and s["made_by"]["pruned"]["heads_per_layer"] == [1, 1]
    assert s["made_by"]["pruned"]["hidden_size_kept"] == 32
    onnx = [a for a in m["artifacts"] if a["format"] == "onnx"]
    assert onnx and all(a["parity"]["passed"] for a in onnx)
    from compressor.loading import load_model

    back = load_model(tmp_path / "out" / "student.pt")
    hidden = back.module(*feed(3))[0]
    assert hidden.shape == (3, 12, 32)
