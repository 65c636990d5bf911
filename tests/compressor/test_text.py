"""Text data for token-input models: a text file or JSONL, tokenised offline with the model's tokenizer.json."""
from __future__ import annotations

import json

import pytest

from compressor import data
from compressor.core.errors import CompressError

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "tree", "quickly", "slowly"]


def make_tokenizer(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def test_a_text_file_becomes_padded_token_ids(tmp_path):
    tok = make_tokenizer(tmp_path / "tok")
    (tmp_path / "t.txt").write_text("the cat sat on the mat\n\nthe dog ran quickly under the tree zebra\n")
    d = data.load(str(tmp_path / "t.txt"), input_dtype="int64", input_shape=(1, 8), tokenizer=str(tok))
    assert d.x.shape == (2, 8) and d.x.dtype == "int64" and d.y is None
    assert list(d.x[0]) == [2, 4, 6, 8, 2, 10, 0, 0]  # padded with [PAD]
    assert list(d.x[1][:8]) == [2, 5, 7, 12, 9, 2, 11, 1]  # cut to 8 tokens; zebra is [UNK]
    assert "padded or cut to 8 tokens" in d.scale


def test_jsonl_labels_and_errors(tmp_path):
    tok = make_tokenizer(tmp_path / "tok")
    rows = [{"text": "the cat sat", "label": 1}, {"text": "a dog ran", "label": 0}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    d = data.load(str(tmp_path / "t.jsonl"), input_dtype="int64", input_shape=(1, 4), tokenizer=str(tok),
                  num_classes=2)
    assert list(d.y) == [1, 0]
    with pytest.raises(CompressError, match="pass --tokenizer DIR"):
        data.load(str(tmp_path / "t.jsonl"), input_dtype="int64", input_shape=(1, 4))
    with pytest.raises(CompressError, match="token ids of shape"):
        data.load(str(tmp_path / "t.jsonl"), input_shape=(1, 3, 8, 8), tokenizer=str(tok))
    (tmp_path / "bad.jsonl").write_text('{"txt": "x"}\n')
    with pytest.raises(CompressError, match='no "text" string'):
        data.load(str(tmp_path / "bad.jsonl"), input_dtype="int64", input_shape=(1, 4), tokenizer=str(tok))
    with pytest.raises(CompressError, match="go up to 1 but the model has 1 outputs"):
        data.load(str(tmp_path / "t.jsonl"), input_dtype="int64", input_shape=(1, 4), tokenizer=str(tok),
                  num_classes=1)


@pytest.mark.slow
@pytest.mark.tflite
def test_a_token_classifier_runs_on_text_with_its_tokenizer(tmp_path):
    """compress MODEL --data texts.jsonl --tokenizer DIR: int64 token ids through ONNX and TFLite, named
    input_ids, the labels file written into the artifacts."""
    import numpy as np
    import torch
    from torch import nn

    from compressor.loading import save_torchscript
    from tests.conftest import run_cli

    class TokenClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(len(WORDS) + 2, 8)
            self.fc = nn.Linear(8, 2)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.fc(self.emb(input_ids).mean(1))

    torch.manual_seed(0)
    save_torchscript(TokenClassifier().eval(), tmp_path / "m.pt", (1, 12), "int64")
    tok = make_tokenizer(tmp_path / "tok")
    rng = np.random.default_rng(0)
    rows = [{"text": " ".join(rng.choice(WORDS, 6)), "label": int(i % 2)} for i in range(80)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "labels.txt").write_text("negative\npositive\n")
    out = tmp_path / "out"
    p = run_cli(tmp_path / "m.pt", "--data", tmp_path / "t.jsonl", "--tokenizer", tok, "--labels",
                tmp_path / "labels.txt", "--target", "onnx,tflite", "--variants", "float32,float16", "--out", out)
    assert p.returncode == 0, p.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["labels"] == ["negative", "positive"] and "tokenised" in m["data"]["scale"]
    assert {a["name"]: a["inputs"][0]["name"] for a in m["artifacts"]} == {
        "onnx:float32": "input_ids", "tflite:float32": "input_ids", "tflite:float16": "input_ids"}
    assert all(a["parity"]["passed"] and a["parity"]["top1_agreement"] == 1.0 for a in m["artifacts"])


def test_input_spec_parses_name_shape_and_dtype():
    from compressor.loading import parse_input

    assert parse_input("input_ids:1x128:int64") == ("input_ids", (1, 128), "int64")
    assert parse_input("1x3x224x224") == (None, (1, 3, 224, 224), None)
    assert parse_input("1,16:int32") == (None, (1, 16), "int32")
    with pytest.raises(CompressError, match="write it like"):
        parse_input("ids:1xAx3")


@pytest.mark.slow
def test_a_traced_token_model_takes_its_dtype_from_input(tmp_path):
    """A TorchScript file without metadata knows no dtype: --input input_ids:1x12:int64 gives it."""
    import torch
    from torch import nn

    from tests.conftest import run_cli

    torch.manual_seed(0)
    m = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(48, 2)).eval()
    torch.jit.save(torch.jit.trace(m, torch.zeros(1, 12, dtype=torch.long)), str(tmp_path / "m.pt"))
    tok = make_tokenizer(tmp_path / "tok")
    (tmp_path / "t.txt").write_text("\n".join(["the cat sat on the mat", "a dog ran under a tree"] * 15))
    args = ["--data", tmp_path / "t.txt", "--tokenizer", tok, "--target", "onnx", "--out", tmp_path / "out"]
    p = run_cli(tmp_path / "m.pt", "--input", "input_ids:1x12:int64", *args)
    assert p.returncode == 0, p.stderr[-2000:]
    p = run_cli(tmp_path / "m.pt", "--input-shape", "1,12", *args[:-1], tmp_path / "out2")
    assert p.returncode == 2 and p.stderr.count("\n") == 1  # float zeros into an embedding: one line
