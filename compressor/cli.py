"""`compress`: a thin command line over compressor.pipeline and friends.

    compress MODEL [options]      load, (distil, quantize,) export, validate, report
    compress demo [options]       the same on the built-in digits teacher
    compress teacher FILE         write the built-in teacher in a chosen format
Heavy libraries are imported inside the commands, so `compress --help` stays fast.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .core.errors import CompressError

COMMANDS: dict[str, Callable[[list[str]], int]] = {}
EPILOG = """other commands:
  compress demo [options]    run the whole job on the built-in digits teacher (no model needed)
  compress teacher FILE      write the built-in teacher (--format torchscript|pt2|state_dict|pickle)
  compress bench OUT_DIR     time artifacts on cpu/mobile/browser targets; --save/--compare a CI baseline
run `compress COMMAND --help` for each."""


def command(name: str):
    def deco(fn: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        COMMANDS[name] = fn
        return fn
    return deco


def run_parser(prog: str = "compress", with_model: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Compress a PyTorch model into verified edge artifacts.",
                                epilog=EPILOG if with_model else None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if with_model:
        p.add_argument("model", nargs="+", help="TorchScript (.pt), torch.export program (.pt2), state_dict (with "
                       "--arch), or a pickled nn.Module (with --trust-model); several files: an ensemble of "
                       "teachers (with --student)")
    p.add_argument("--target", default="onnx", help="onnx, tflite, tfjs, onnx-web, or all; comma-separated")
    p.add_argument("--out", default="out", help="output folder (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--data", default="digits", help="'digits', a folder of images by class, or an .npz with x/y")
    p.add_argument("--arch", help="package.module:ClassName for a state_dict")
    p.add_argument("--trust-model", action="store_true", help="allow unpickling a whole model (runs its code)")
    p.add_argument("--input-shape", help="input shape with batch, e.g. 1,3,32,32")
    p.add_argument("--calib", type=int, default=200, help="calibration samples for int8 (default 200)")
    p.add_argument("--layout", default="nchw", help="TFLite input layout: nchw (as PyTorch) or nhwc")
    p.add_argument("--tfjs-quant", help="TF.js weight quantization: float16, uint8, uint16")
    p.add_argument("--bundle", help="browser bundle folder inside --out for tfjs/onnx-web (default web, web-ort)")
    p.add_argument("--variants", default="", help="TFLite variants: float32,float16,dynamic-int8,int8,int16x8 "
                                                  "(default: all but int16x8)")
    p.add_argument("--parity-samples", type=int, help="held-out samples used for parity checks (default: all)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the data split and of training (default 0; a recipe's seed: key when not given)")
    p.add_argument("--bench", default="", help="benchmark the artifacts on: cpu, mobile, browser (comma-separated; "
                                               "default off); writes report.html/report.md")
    p.add_argument("--bench-bounds", default="demo", help="benchmark run bounds: quick, demo, default, thorough")
    p.add_argument("--bench-device", default="pixel-7", help="emulated phone for --bench mobile (pixel-7, moto-g4 ...)")
    from .distill.cli_args import add_arguments as add_distill_arguments

    add_distill_arguments(p)
    p.add_argument("--quantize", help="int8 (static, calibrated), fp16, dynamic (int8 weights) or qat "
                                      "(quantization-aware fine-tuning); adds ONNX artifacts, for qat with a tflite "
                                      "target also its TFLite int8, for int8 with onnx-web an int8 web bundle "
                                      "(see docs/quantization.md)")
    p.add_argument("--calib-method", help="int8 calibration: minmax (default), entropy, percentile")
    p.add_argument("--max-accuracy-drop", type=float, default=1.0,
                   help="accuracy budget of every int8 artifact (ONNX --quantize, TFLite int8), in percentage "
                        "points on the held-out split (default 1.0)")
    return p


def quantize_from_args(a: argparse.Namespace):
    if a.quantize is None:
        if a.calib_method is not None:
            raise CompressError("--calib-method needs --quantize int8")
        return None
    from .quantize.config import from_name

    return from_name(a.quantize, calib_method=a.calib_method, calib_samples=a.calib,
                     max_accuracy_drop=a.max_accuracy_drop)


def config_from_args(a: argparse.Namespace, model: str, extra_teachers: tuple[str, ...] = ()):
    from exporters.base import ExportOptions

    from .config import RunConfig
    from .distill.cli_args import from_args as distill_from_args
    from .loading import parse_shape

    return RunConfig(
        model=model, targets=tuple(t.strip() for t in a.target.split(",")), out=a.out, overwrite=a.overwrite,
        data=a.data, arch=a.arch, trust_model=a.trust_model,
        input_shape=parse_shape(a.input_shape) if a.input_shape else None,
        seed=a.seed if a.seed is not None else 0,  # None = not typed, so a recipe's seed: can apply
        parity_samples=a.parity_samples,
        bench=tuple(t.strip() for t in a.bench.split(",") if t.strip()), bench_bounds=a.bench_bounds,
        bench_device=a.bench_device,
        export=ExportOptions(calib_samples=a.calib, layout=a.layout, tfjs_quant=a.tfjs_quant, bundle=a.bundle,
                             variants=tuple(v.strip() for v in a.variants.split(",") if v.strip()),
                             max_accuracy_drop=a.max_accuracy_drop),
        distill=distill_from_args(a, extra_teachers),
        quantize=quantize_from_args(a),
    )


def run_main(argv: list[str]) -> int:
    a = run_parser().parse_args(argv)
    from . import pipeline

    pipeline.run(config_from_args(a, a.model[0], tuple(a.model[1:])))
    return 0


@command("demo")
def demo_main(argv: list[str]) -> int:
    a = run_parser("compress demo", with_model=False).parse_args(argv)
    from rich.console import Console

    from . import demo, pipeline

    console = Console(stderr=True)
    if not demo.teacher_path_cached():
        from .outputs import check_target

        check_target(a.out, a.overwrite)  # a bad --out fails before the teacher's training, not after
        from rich.progress import Progress

        with Progress(console=console) as bar:
            task = bar.add_task("training the built-in digits teacher (once; cached)", total=demo.EPOCHS)
            demo.teacher_path(progress=lambda epoch, acc: bar.update(
                task, advance=1, description=f"training the built-in teacher: val accuracy {acc:.3f}"))
    pipeline.run(config_from_args(a, "demo"), console)
    return 0


@command("teacher")
def teacher_main(argv: list[str]) -> int:
    from .demo import FORMATS

    p = argparse.ArgumentParser(prog="compress teacher", description="Write the built-in digits teacher.")
    p.add_argument("file", type=Path)
    p.add_argument("--format", default="torchscript", help=f"one of: {', '.join(FORMATS)}")
    a = p.parse_args(argv)
    from .core.registry import check_choice

    check_choice("format", a.format, FORMATS)
    from . import demo

    demo.save_as(demo.teacher().module, a.file, a.format)
    print(a.file)
    return 0


@command("bench")
def bench_main(argv: list[str]) -> int:
    from benchmarks.cli import main as bench

    return bench(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    fn = COMMANDS.get(argv[0]) if argv else None
    from .runs import run_folder, sigterm_as_interrupt

    received: list[int] = []
    try:
        with sigterm_as_interrupt(received), run_folder():
            return fn(argv[1:]) if fn else run_main(argv)
    except (Exception, KeyboardInterrupt) as e:
        if received:  # whatever the interrupt became on its way up: an extension's import wraps it in ImportError
            print("error: terminated (SIGTERM); the previous output is unchanged", file=sys.stderr)
            return 143  # 128 + SIGTERM, as a shell reports a process that SIGTERM ended
        if isinstance(e, CompressError):  # 2 bad input, 3 parity, 4 budget, 5 converter (core/errors.py)
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
        if isinstance(e, KeyboardInterrupt):
            print("error: interrupted; the previous output is unchanged", file=sys.stderr)
            return 130
        raise


if __name__ == "__main__":
    sys.exit(main())
