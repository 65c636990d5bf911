"""The options of `compress MODEL` / `compress demo`: flags, a recipe under them, one RunConfig.

Every run flag defaults to None, so that only the flags actually typed override the recipe
(--recipe FILE, compressor/recipe.py); the defaults are the configs' own (and recipe.DEFAULTS).
`--print-recipe` writes the effective recipe of the run into its output folder.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# flag dest -> recipe key (compressor/recipe.py KEYS), for the flags a recipe can hold
FLAGS = {"target": "targets", "data": "data", "input_shape": "input_shape", "seed": "seed",
         "parity_samples": "parity_samples", "calib": "calib", "layout": "layout", "variants": "variants",
         "tfjs_quant": "tfjs_quant", "bundle": "bundle", "max_accuracy_drop": "max_accuracy_drop",
         "min_agreement": "min_agreement",
         "calib_method": "calib_method", "bench": "bench", "bench_bounds": "bench_bounds",
         "bench_device": "bench_device", "task": "task", "preprocess": "preprocess", "labels": "labels",
         "tokenizer": "tokenizer", "opset": "opset",
         "dynamic": "dynamic"}


def add_run_arguments(p: argparse.ArgumentParser, with_model: bool = True) -> None:
    if with_model:
        p.description = ("compress MODEL (or compress export MODEL): load, (distil, quantize,) export, verify and "
                         "(benchmark) a PyTorch model.")
        p.add_argument("model", nargs="*", help="TorchScript (.pt), torch.export program (.pt2), state_dict (with "
                       "--arch), or a pickled nn.Module (with --trust-model); several files: an ensemble of "
                       "teachers (with --student)")
    else:
        p.description = "Run the whole job on the built-in digits teacher (trained once, cached)."
    p.add_argument("--target", help="onnx, tflite, tfjs, onnx-web, or all; comma-separated (default onnx)")
    p.add_argument("--out", default="out", help="output folder (written atomically; default out)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--data", help="'digits' (the demo's, default), a folder of images by class (or unlabelled), an .npz with x "
                                  "(and y), a .txt/.jsonl of text (with --tokenizer), or 'random' (export only)")
    p.add_argument("--task", help="what the output is: classify (logits), dense (per-pixel maps), embed, regress; "
                                  "default: from the output's shape")
    p.add_argument("--preprocess", help="image folders: imagenet, mean=a,b,c,std=d,e,f, or none (pixels / 255); "
                                        "images are resized and centre-cropped to the model's input")
    p.add_argument("--labels", help="a labels.txt naming the classifier's outputs (default: the model's own, or "
                                    "the class folders'); written into every artifact")
    p.add_argument("--tokenizer", help="folder with the model's tokenizer.json, for text --data")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument("--dynamic", help="ONNX dynamic axes: batch (default) or batch,seq (also the sequence length "
                                     "of token inputs; checked at half the length too)")
    p.add_argument("--arch", help="package.module:ClassName for a state_dict")
    p.add_argument("--trust-model", action="store_true", help="allow unpickling a whole model (runs its code)")
    p.add_argument("--input-shape", help="input shape with batch, e.g. 1,3,32,32")
    p.add_argument("--input", action="append",
                   help="an input as [NAME:]SHAPE[:DTYPE], e.g. input_ids:1x128:int64 or 1x3x224x224 (dtypes: "
                        "float32, float16, int64, int32, bool); repeat it for each input of a model with several; "
                        "the name is the model's own")
    p.add_argument("--calib", type=int, help="calibration samples for int8 (default 200)")
    p.add_argument("--layout", help="TFLite input layout: nchw (as PyTorch; default) or nhwc")
    p.add_argument("--tfjs-quant", help="TF.js weight quantization: float16, uint8, uint16")
    p.add_argument("--bundle", help="browser bundle folder inside --out for tfjs/onnx-web (default web, web-ort)")
    p.add_argument("--variants", help="TFLite variants: float32,float16,dynamic-int8,int8,int16x8 "
                                      "(default: all but int16x8)")
    p.add_argument("--parity-samples", type=int, help="held-out samples used for parity checks (default: all)")
    p.add_argument("--seed", type=int, help="seed of the data split and of training (default 0)")
    p.add_argument("--bench", help="benchmark the artifacts on: cpu, mobile, browser (comma-separated; "
                                   "default off); writes report.html/report.md")
    p.add_argument("--bench-bounds", help="benchmark run bounds: quick, demo (default), default, thorough")
    p.add_argument("--bench-device", help="emulated phone for --bench mobile (pixel-7 (default), moto-g4 ...)")
    p.add_argument("--quantize", help="int8 (static, calibrated), fp16, dynamic (int8 weights) or qat "
                                      "(quantization-aware fine-tuning); adds ONNX artifacts, for qat with a tflite "
                                      "target also its TFLite int8, for int8 with onnx-web an int8 web bundle "
                                      "(see docs/quantization.md)")
    p.add_argument("--calib-method", help="int8 calibration: minmax (default), entropy, percentile")
    p.add_argument("--max-accuracy-drop", type=float,
                   help="accuracy budget of every int8 artifact (ONNX --quantize, TFLite int8), in percentage "
                        "points on the held-out split (default 1.0)")
    p.add_argument("--min-agreement", type=float,
                   help="least share of held-out predictions every int8 artifact keeps from the float model, 0-1 "
                        "(default 0.99); without labels it is the whole budget")
    p.add_argument("--print-recipe", action="store_true", help="write the run's effective recipe (every "
                   "option) to OUT/recipe.yaml and stdout; `--recipe OUT/recipe.yaml` repeats the run")
    p.add_argument("--json", action="store_true", help="print the manifest on stdout (logs go to stderr)")
    from .distill.cli_args import add_arguments as add_distill_arguments

    add_distill_arguments(p)


def run_parser(prog: str = "compress", with_model: bool = True) -> argparse.ArgumentParser:
    """The run options alone, as a plain ArgumentParser (argparse's own errors): for tests and scripts."""
    p = argparse.ArgumentParser(prog=prog)
    add_run_arguments(p, with_model)
    return p


def typed_options(a: argparse.Namespace) -> dict:
    """The flags typed on the command line, as recipe options (converted and checked as a recipe's are)."""
    from . import recipe

    out = {}
    for dest, key in FLAGS.items():
        v = getattr(a, dest, None)
        if v is None:
            continue
        if key == "input_shape":
            from .loading import parse_shape

            v = parse_shape(v)
        out[key] = recipe.option(key, v, f"--{dest.replace('_', '-')}")
    if getattr(a, "input", None):  # --input [NAME:]SHAPE[:DTYPE], once per input
        from .loading import parse_input

        out["inputs"] = recipe.option("inputs", list(a.input), "--input")
        if len(a.input) == 1:
            _name, shape, dtype = parse_input(a.input[0])
            out["input_shape"] = recipe.option("input_shape", shape, "--input")
            if dtype is not None:
                out["input_dtype"] = recipe.option("input_dtype", dtype, "--input")
    if getattr(a, "quantize", None) is not None:
        out["quantize"] = a.quantize
    return out


def config_from_args(a: argparse.Namespace, model: str | list[str], extra_teachers: tuple[str, ...] = ()):
    """The RunConfig of the typed flags over the recipe (--recipe) over the defaults."""
    from . import recipe
    from .distill.cli_args import apply
    from .distill.config import DistillConfig

    path = getattr(a, "recipe", None)
    given = recipe.load(path) if path else {}
    opts = recipe.merge(given, typed_options(a))
    base = recipe.distill_config(given, path or "recipe")  # typed flags go on top of it in `apply`
    if base is None and a.student is not None:  # --student turns distillation on, with the run's seed
        base = DistillConfig(seed=opts.get("seed", 0))
    return recipe.build(opts, model=str(model), distill=apply(a, base, extra_teachers), out=a.out,
                        overwrite=a.overwrite, arch=a.arch, trust_model=a.trust_model)


def finish(a: argparse.Namespace, cfg, as_json: bool) -> str | None:
    """After a run: --print-recipe, and the manifest's text for --json (exactly the file written)."""
    from .distill import distributed
    from .outputs import target_path

    if distributed.is_worker():  # a rank > 0 under torchrun wrote nothing: rank 0 reports
        return None
    out = target_path(cfg.out)
    if a.print_recipe:
        print(write_recipe(cfg, out), end="")  # under --json, stdout is stderr until the result is printed
    return (out / "manifest.json").read_text() if as_json else None


def write_recipe(cfg, out: Path) -> str:
    """OUT/recipe.yaml, written under the output's lock (the run has published the folder; a file is
    swapped in whole, so a reader never sees half of it). Returns its text."""
    from . import recipe
    from .outputs import lock

    text = recipe.dump(cfg)
    with lock(out):
        tmp = out / f".recipe.yaml.tmp-{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, out / "recipe.yaml")
    print(f"recipe written to {out / 'recipe.yaml'}", file=sys.stderr)
    return text
