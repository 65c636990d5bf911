"""Data for a model with several inputs (input_ids + attention_mask, image + metadata): one packed array with a
field per input, named as the model names them (compressor/core/feeds.py).

    --data FILE.npz     one array per input name (and `y`, optional)
    --data texts.txt    tokenised (--tokenizer DIR): input_ids, attention_mask (1 on real tokens) and
                        token_type_ids (0: one segment), each fed by name
    --data random       random values of each input's shape and dtype (masks all ones, segment ids zero)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import text
from .core import feeds
from .core.artifact import TensorSpec
from .core.errors import CompressError
from .data import RANDOM, RANDOM_SAMPLES, Dataset, random_array

MASKS = ("attention_mask", "mask")  # 1 where a token is real
SEGMENTS = ("token_type_ids", "segment_ids")  # 0: the first (only) segment
TOKENS = ("input_ids", "ids", "tokens")


def load(spec: str, inputs: tuple[TensorSpec, ...], *, num_classes: int | None = None,
         tokenizer: str | None = None) -> Dataset:
    names = ", ".join(s.name for s in inputs)
    if spec == RANDOM:
        return random_inputs(inputs)
    p = Path(spec)
    if spec == "digits" or not p.exists():
        raise CompressError(f"the model takes {len(inputs)} inputs ({names}); give --data FILE.npz with one array "
                            "per input name, --data TEXT.txt --tokenizer DIR for token inputs, or --data random")
    if p.suffix == ".npz":
        return conform(_npz(p, inputs, num_classes), inputs)
    if p.suffix in text.TEXT_SUFFIXES:
        return conform(_text(p, inputs, tokenizer, num_classes), inputs)
    raise CompressError(f"data {spec!r} cannot feed the model's {len(inputs)} inputs ({names}); give an .npz with "
                        "one array per input name, a .txt/.jsonl of text with --tokenizer, or random")


def _npz(path: Path, inputs: tuple[TensorSpec, ...], num_classes: int | None) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
            missing = [s.name for s in inputs if s.name not in files]
            if missing:
                raise CompressError(f"{path} has no array named {', '.join(missing)} (it holds "
                                    f"{', '.join(sorted(files)) or 'nothing'}); save one array per model input, "
                                    "named as the inputs")
            arrays = {s.name: f[s.name] for s in inputs}
            y = f["y"] if "y" in files else None
    except CompressError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy and zipfile raise many kinds for a bad file
        raise CompressError(f"cannot read {path} as .npz ({type(e).__name__}); save it with numpy.savez") from None
    classes: tuple[str, ...] = ()
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.dtype.kind not in "iu" or y.min(initial=0) < 0:
            raise CompressError(f"{path}: y must hold one integer label >= 0 per sample")
        if num_classes is not None and len(y) and int(y.max()) >= num_classes:
            raise CompressError(f"labels go up to {int(y.max())} but the model has {num_classes} outputs; "
                                "fix the labels or the model")
        classes = tuple(str(i) for i in range(int(y.max()) + 1)) if len(y) and num_classes else ()
        y = y.astype(np.int64)
    return Dataset(feeds.pack(arrays), y, classes, str(path))


def _text(path: Path, inputs: tuple[TensorSpec, ...], tokenizer: str | None, num_classes: int | None) -> Dataset:
    ids_spec = next((s for s in inputs if s.name in TOKENS), inputs[0])
    other = [s.name for s in inputs if s is not ids_spec and s.name not in MASKS + SEGMENTS]
    if other:
        raise CompressError(f"text data fills {', '.join(TOKENS[:1] + MASKS[:1] + SEGMENTS[:1])}; the model also "
                            f"takes {', '.join(other)}: give an .npz with one array per input instead")
    if len(ids_spec.shape) != 2:
        raise CompressError(f"text data feeds token ids of shape (batch, length); {ids_spec.name} is "
                            f"{tuple(ids_spec.shape)}")
    tok = text.load_tokenizer(tokenizer)
    texts, labels = text.read_examples(path)
    length = int(ids_spec.shape[1])
    ids, mask = text.tokenize(texts, tok, length, with_mask=True)
    arrays = {}
    for s in inputs:
        arrays[s.name] = ids if s is ids_spec else mask if s.name in MASKS else np.zeros_like(ids)
    y = None if labels is None else np.asarray(labels, np.int64)
    if y is not None and num_classes is not None and y.max() >= num_classes:
        raise CompressError(f"labels in {path} go up to {int(y.max())} but the model has {num_classes} outputs; "
                            "fix the labels or the model")
    names = tuple(str(i) for i in range(int(y.max()) + 1)) if y is not None else ()
    how = (f"tokenised by {Path(tokenizer).name}/tokenizer.json, padded or cut to {length} tokens "
           f"(vocabulary {text.vocab_size(tok):,}); {', '.join(arrays)} by name")
    return Dataset(feeds.pack(arrays), y, names, str(path), how)


def random_inputs(inputs: tuple[TensorSpec, ...], n: int = RANDOM_SAMPLES, seed: int = 0) -> Dataset:
    """Random values per input: floats standard normal, token ids in [0, 100), masks 1, segment ids 0."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for s in inputs:
        shape, dtype = (n, *s.shape[1:]), np.dtype(s.dtype)
        if s.name in MASKS:
            arrays[s.name] = np.ones(shape, dtype)
        elif s.name in SEGMENTS:
            arrays[s.name] = np.zeros(shape, dtype)
        else:
            arrays[s.name] = random_array(shape, s.dtype, rng)
    return Dataset(feeds.pack(arrays), None, (), RANDOM, "random inputs: parity only, no accuracy")


def conform(data: Dataset, inputs: tuple[TensorSpec, ...]) -> Dataset:
    """Each input's array in the model's dtype and shape (one line naming the input when it does not fit)."""
    arrays = {}
    for s in inputs:
        a = np.asarray(data.x[s.name])
        want = tuple(int(d) for d in s.shape[1:])
        if tuple(a.shape[1:]) != want:
            raise CompressError(f"{data.source}: {s.name} has samples of shape {tuple(a.shape[1:])} but the model "
                                f"takes {want}; pass matching data or --input {s.name}:1x{'x'.join(map(str, want))}")
        if np.issubdtype(np.dtype(s.dtype), np.integer) and a.dtype.kind not in "iub":
            raise CompressError(f"{data.source}: {s.name} holds {a.dtype} values but the model takes {s.dtype} "
                                "(such as token ids); save integers")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CompressError(f"{data.source}: {s.name} holds NaN or Inf; clean the data")
        arrays[s.name] = a.astype(s.dtype, copy=False)
    from dataclasses import replace

    return replace(data, x=feeds.pack(arrays))
