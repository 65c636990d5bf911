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
