"""Issue 12's "done when" runs: a 224-pixel CNN from an image folder with ImageNet preprocessing, and a BERT-style
encoder (.pt2, input_ids + attention_mask in, two outputs) from a text file with its tokenizer, each through
`compress MODEL --target all`; prints each manifest's parity table.

    .venv/bin/python -m studies.real_inputs [--only cnn|bert] [--keep DIR]

The CNN is MobileNetV2 (compressor/architectures.py, from its paper) with 10 classes, its BatchNorm statistics
re-estimated on the images (untrained weights otherwise: its outputs then depend on the input), the folder
holds 10 classes x 24 smooth synthetic images of 288x288 px, resized and centre-cropped to 224 by the tool.
The encoder is transformers' BertModel (4 layers, hidden 256, 4 heads, sequence 32, random weights) saved with
torch.export and a dynamic batch; the text file holds 300 generated sentences, the tokenizer a word-level
vocabulary of them (Hugging Face `tokenizers`, offline).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_cnn(work: Path) -> list[str]:
    import torch
    from PIL import Image

    from compressor import data
    from compressor.architectures import build, recalibrate_bn, smooth_images
    from compressor.loading import save_torchscript
    from compressor.preprocess import parse

    folder = work / "images"
    imgs = smooth_images(240, 288, seed=0).numpy()  # about zero mean, unit spread
    tints = np.random.default_rng(1).standard_normal((10, 3)) * 2.0  # each class a clear colour cast
    for i, img in enumerate(imgs):
        d = folder / f"class_{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(127.5 + 48 * (np.moveaxis(img, 0, -1) + tints[i % 10]), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(d / f"{i}.png")
    torch.manual_seed(0)
    model = build("mobilenet_v2", num_classes=10)
    # trained end to end on the images exactly as the tool will feed them (resize, crop, ImageNet mean/std): an
    # untrained net with re-estimated BatchNorm is ill-conditioned (tiny running variances amplify input noise
    # 100x: int8's input rounding alone flips its answers), a trained one is not
    d = data.load(str(folder), 3, input_shape=(1, 3, 224, 224), preprocess=parse("imagenet"))
    x = torch.from_numpy(np.asarray(d.x, dtype=np.float32))
    recalibrate_bn(model, x)
    train(model, x, torch.from_numpy(d.y))
    save_torchscript(model, work / "mobilenet_v2.pt", (1, 3, 224, 224))
    return [str(work / "mobilenet_v2.pt"), "--target", "all", "--data", str(folder), "--preprocess", "imagenet"]


def train(model, x, y, epochs: int = 4, seed: int = 0) -> None:
    """A few epochs of Adam on every weight (BatchNorm in train mode), then eval mode."""
    import torch

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(16):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()


WORDS = ["the", "a", "one", "some", "every", "cat", "dog", "bird", "fish", "horse", "runs", "sleeps", "eats", "sees", "jumps", "over", "under", "near", "big", "small", "red", "green", "blue", "fast", "slow", "happy", "sad", "old", "young", "tree", "house", "river", "hill", "road"]


def make_bert(work: Path) -> list[str]:
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(4, 24))) for _ in range(300)]
    (work / "texts.txt").write_text("\n".join(lines) + "\n")
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    (work / "tokenizer").mkdir()
    tok.save(str(work / "tokenizer" / "tokenizer.json"))
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                  intermediate_size=1024, max_position_embeddings=64)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.BertModel(cfg).eval()
    ids, mask = torch.ones(2, 32, dtype=torch.long), torch.ones(2, 32, dtype=torch.long)
    batch = torch.export.Dim("batch")
    ep = torch.export.export(model, (), {"input_ids": ids, "attention_mask": mask},
                             dynamic_shapes={"input_ids": {0: batch}, "attention_mask": {0: batch}})
    torch.export.save(ep, work / "encoder.pt2")
    return [str(work / "encoder.pt2"), "--target", "all", "--data", str(work / "texts.txt"), "--tokenizer",
            str(work / "tokenizer"), "--task", "embed"]


def parity_rows(manifest: dict) -> list[str]:
    rows = ["| artifact | output | kind | max abs diff | agreement | passed |", "|---|---|---|---|---|---|"]
    for a in manifest["artifacts"]:
        p = a.get("parity") or {}
        for name, q in (p.get("outputs") or {"(one)": p}).items():
            if q:
                rows.append(f"| {a['format']}:{a['variant']} | {name} | {q['kind']} | {q['max_abs_diff']:.2e} | "
                            f"{q['top1_agreement']:.4f} | {q['passed']} |")
    return rows


def run(name: str, args: list[str], work: Path) -> None:
    out = work / f"out-{name}"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", *args, "--out", str(out), "--overwrite"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    (work / f"{name}.log").write_text(proc.stdout + proc.stderr)
    print(f"\n## {name}: compress {' '.join(Path(a).name if '/' in a else a for a in args)}")
    print(f"exit {proc.returncode} after {seconds:.0f} s")
    if proc.returncode:
        print(proc.stderr.strip().splitlines()[-1])
        return
    m = json.loads((out / "manifest.json").read_text())
    print(f"inputs {m['teacher'].get('inputs')}; labels {m.get('labels')}; skipped {m.get('skipped')}")
    print("\n".join(parity_rows(m)))
    for a in m["artifacts"]:
        extra = {k: a.get("extra", {}).get(k) for k in ("batch", "checked_batches", "output_names") if a.get("extra", {}).get(k)}
        if extra:
            print(f"- {a['format']}:{a['variant']}: {extra}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("cnn", "bert"))
    ap.add_argument("--keep", type=Path)
    a = ap.parse_args(argv)
    work = a.keep or Path(tempfile.mkdtemp(prefix="real-inputs-"))
    work.mkdir(parents=True, exist_ok=True)
    for name, make in (("cnn", make_cnn), ("bert", make_bert)):
        if a.only in (None, name):
            run(name, make(work), work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
