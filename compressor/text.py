"""Text data for token-input models: a text file (one example a line) or a JSONL with a `text` field (and an
optional integer `label`), tokenised with the model's own tokenizer files, offline.

    --data texts.txt --tokenizer DIR     DIR/tokenizer.json, read with Hugging Face's `tokenizers` library
Each example is truncated or padded to the model's sequence length (its input shape), with the tokenizer's
own padding token. The result is `input_ids` (batch, length) in the model's integer dtype.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .core.errors import CompressError

TEXT_SUFFIXES = (".txt", ".jsonl")
MAX_LINE = 100_000  # characters; a longer "line" is a binary file or a mistake


def read_examples(path: Path) -> tuple[list[str], list[int] | None]:
    """The texts (and labels, when every JSONL record has one) of a .txt or .jsonl file."""
    texts: list[str] = []
    labels: list[int] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise CompressError(f"{path} is not UTF-8 text; give a text file with one example a line") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            raise CompressError(f"{path} line {n} has {len(line):,} characters; give one example a line")
        if path.suffix == ".jsonl":
            try:
                rec = json.loads(line)
            except ValueError:
                raise CompressError(f"{path} line {n} is not JSON; a .jsonl holds one JSON object a line") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                raise CompressError(f"{path} line {n} has no \"text\" string; each record needs one")
            texts.append(rec["text"])
            label = rec.get("label")
            if isinstance(label, int) and not isinstance(label, bool) and label >= 0:
                labels.append(label)
        else:
            texts.append(line)
    if not texts:
        raise CompressError(f"{path} holds no text; give one example a line")
    return texts, labels if len(labels) == len(texts) else None


def load_tokenizer(folder: str | Path | None):
    if folder is None:
        raise CompressError("text data needs the model's tokenizer: pass --tokenizer DIR (a folder with "
                            "tokenizer.json)")
    file = Path(folder) / "tokenizer.json" if Path(folder).is_dir() else Path(folder)
    if not file.is_file():
        raise CompressError(f"no tokenizer.json in {folder}; pass the folder the model's tokenizer was saved to")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise CompressError("reading a tokenizer needs the `tokenizers` package; run `make setup`") from None
    try:
        return Tokenizer.from_file(str(file))
    except Exception as e:  # noqa: BLE001 - the library's own parse errors
        raise CompressError(f"{file} is not a tokenizer file ({str(e).splitlines()[0][:200]})") from None


def tokenize(texts: list[str], tokenizer, length: int, with_mask: bool = False):
    """Token ids (len(texts), length), truncated or padded with the tokenizer's padding token (else 0); with
    `with_mask`, also the attention mask (1 on real tokens, 0 on padding)."""
    pad_id = 0
    padding = tokenizer.padding
    if padding and padding.get("pad_id") is not None:
        pad_id = int(padding["pad_id"])
    tokenizer.no_padding()
    tokenizer.no_truncation()
    ids = np.full((len(texts), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(texts), length), dtype=np.int64)
    for i, enc in enumerate(tokenizer.encode_batch(texts)):
        row = enc.ids[:length]
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return (ids, mask) if with_mask else ids


def vocab_size(tokenizer) -> int:
    return int(tokenizer.get_vocab_size(with_added_tokens=True))
