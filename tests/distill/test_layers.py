"""--student layers:K: a real, smaller copy of the teacher with K of its N encoder layers."""
import numpy as np
import pytest
import torch
from torch import nn

from compressor import data as datasets
from compressor.core.errors import CompressError
from compressor.distill import layers, students
from compressor.distill.config import DistillConfig, layer_count
from compressor.distill.engine import distill
from compressor.loading import from_module, load_model


class TokenEncoder(nn.Module):
    """A tiny classifier over token ids with a plain nn.TransformerEncoder."""

    def __init__(self, vocab: int = 20, d: int = 16, n_layers: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(ids)).mean(1))


def test_layer_count_parses_and_refuses():
    assert layer_count("layers:3") == 3 and layer_count("auto") is None and layer_count("s.pt") is None
    for bad in ("layers:0", "layers:x", "layers:"):
        with pytest.raises(CompressError, match="write layers:K"):
            DistillConfig(student=bad)
    with pytest.raises(CompressError, match="--assistants steps down by channel pruning"):
        DistillConfig(student="layers:2", assistants=1)


def test_evenly_spaced_is_distilberts_choice():
    assert layers.evenly_spaced(12, 6) == (0, 2, 4, 7, 9, 11)  # DistilBERT's extraction
    assert layers.evenly_spaced(6, 3) == (0, 3, 5)
    assert layers.evenly_spaced(4, 1) == (3,)
    with pytest.raises(ValueError):
        layers.evenly_spaced(4, 4)


def test_transformer_encoder_student_is_smaller_and_keeps_teacher_weights():
    torch.manual_seed(0)
    t = TokenEncoder().eval()
    s, info = layers.drop_layers(t, 2)
    assert isinstance(s.encoder.layers, nn.ModuleList) and len(s.encoder.layers) == 2 and s.encoder.num_layers == 2
    assert len(t.encoder.layers) == 4  # the teacher is untouched
    assert info["kept_layers"] == [0, 3] and info["stack"] == "encoder.layers" and info["teacher_layers"] == 4
    assert info["parameters_after"] == students.count_params(s) < info["parameters_before"]
    sd_t, sd_s = t.state_dict(), s.state_dict()
    assert torch.equal(sd_s["encoder.layers.1.linear1.weight"], sd_t["encoder.layers.3.linear1.weight"])
    assert torch.equal(sd_s["embed.weight"], sd_t["embed.weight"]) and torch.equal(sd_s["head.bias"], sd_t["head.bias"])
    assert s(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 3)


def test_hugging_face_bert_student_updates_its_config():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                                  vocab_size=50, num_labels=3, max_position_embeddings=16)
    t = transformers.BertForSequenceClassification(cfg).eval()
    s, info = layers.drop_layers(t, 2)
    assert info["stack"] == "bert.encoder.layer" and info["kept_layers"] == [0, 3]
    assert len(s.bert.encoder.layer) == 2 and s.config.num_hidden_layers == 2 and t.config.num_hidden_layers == 4
    assert [blk.attention.self.layer_idx for blk in s.bert.encoder.layer] == [0, 1]
    ids = torch.randint(0, 50, (2, 6))
    assert s(ids).logits.shape == (2, 3)
    assert students.count_params(s) < students.count_params(t)


def test_no_stack_and_scripted_teachers_are_one_line_errors(teacher_files):
    with pytest.raises(CompressError, match=r"needs a stack of encoder layers .*--student auto with --ratio"):
        layers.drop_layers(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), 1)
    with pytest.raises(CompressError, match="the teacher has 4 layers in encoder.layers; keep fewer, 1 to 3"):
        layers.drop_layers(TokenEncoder(), 4)
    # a .pt2 program is cut instead (tests/distill/test_layers_pt2.py)
    with pytest.raises(CompressError, match=r"--student layers:1 needs the teacher as a plain nn.Module") as e:
        layers.drop_layers(load_model(teacher_files["torchscript"]).module, 1)
    assert "\n" not in str(e.value)


def test_layers_student_distils_end_to_end(tmp_path):
    """A teacher trained on a token task, distilled into 2 of its 4 layers: the manifest figures, agreement."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 20, (360, 6), generator=g)
    y = (ids[:, 0] % 3).numpy().astype(np.int64)  # the class is the first token's residue: depends on the input
    torch.manual_seed(0)
    from compressor.distill.trainer import fit

    ds = datasets.Dataset(ids.numpy(), y, ("a", "b", "c"), "tokens")
    sp = datasets.split(ds, seed=0)
    teacher = fit(TokenEncoder(), sp.train, sp.val, epochs=8, lr=3e-3, seed=0)
    teacher.input_dtype = torch.int64  # what the loader reads for a module built in Python
    unlabelled = datasets.Splits(*(datasets.Dataset(d.x, None, (), "tokens") for d in (sp.train, sp.val, sp.test)))
    cfg = DistillConfig(student="layers:2", epochs=4, cache_dir=str(tmp_path / "c"), checkpoint_dir=str(tmp_path / "r"))
    out = distill(from_module(teacher, input_shape=(1, 6), name="t"), unlabelled, cfg)
    assert out.student_info["kept_layers"] == [0, 3] and out.student_info["init"] == "teacher"
    assert len(out.student.encoder.layers) == 2
    assert out.check["metric"] == "top-1 agreement" and out.check["value"] > 0.6 and not out.check["collapsed"]
