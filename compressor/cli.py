"""`compress`: a thin command line over compressor.pipeline and friends.

    compress export MODEL [options]   load, (distil, quantize,) export, validate, report;
    compress MODEL [options]          the same (a first argument that is no command is export's model)
    compress demo [options]           the same on the built-in digits teacher
    compress teacher FILE             write the built-in teacher in a chosen format
    compress bench OUT_DIR [options]  benchmark artifacts; gate on a baseline
    compress --version                the tool's version and its libraries'

A usage error is one line (`error: ...; see compress SUB --help`), exit 2, as every CompressError;
`--json` prints the result (the manifest, bench's document) on stdout and everything else on stderr.
Each command's flags are added only when it runs, and heavy libraries are imported inside the
commands, so that `compress --help` stays fast. The run options (export, demo) and their recipe:
cli_options.py.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from . import cli_options
from .cli_options import config_from_args, run_parser  # noqa: F401  (for tests and scripts)
from .core.errors import CompressError

Result = tuple[int, str | None]  # exit status, and the JSON text that --json prints on stdout
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., Result]]] = {}
DESCRIPTION = """Compress a PyTorch model into verified edge artifacts.

commands:
  compress MODEL [options]         the main job (= compress export MODEL): its options are below
  compress demo [options]          the same on the built-in digits teacher (no model needed)
  compress teacher FILE            write the built-in teacher (--format torchscript|pt2|state_dict|pickle)
  compress bench OUT_DIR           time artifacts on cpu/mobile/browser; --save/--compare a CI baseline
  compress --version               versions of this tool, torch, onnx, onnxruntime, tensorflow, tensorflowjs
run `compress COMMAND --help` for each; the options of `compress MODEL` follow."""
EXIT = """--json: the manifest (export, demo) or the result with the gate's verdict (bench) on stdout, logs on stderr;
an error as {"error": ..., "exit_code": N}. --recipe FILE: any option above as YAML (docs/api.md#recipes).
exit status: 0 done; 1 bench: the gate found a regression; 2 bad input or usage; 3 a parity check failed;
4 an accuracy budget could not be met; 5 a converter or runtime failed; 70 an internal error (a bug: report it);
130/143 interrupted (Ctrl-C/SIGTERM)."""


class Parser(argparse.ArgumentParser):
    """argparse with a usage error as one line (a CompressError: exit 2), not the usage dump."""

    def error(self, message: str) -> NoReturn:
        raise CompressError(f"{message}; see {self.prog} --help")


class TopParser(Parser):
    """`compress --help`: the commands, then the options of the main job (`compress MODEL`)."""

    main_job: argparse.ArgumentParser | None = None
    selected: argparse.ArgumentParser | None = None  # the command's parser: leftover arguments are its errors

    def error(self, message: str) -> NoReturn:
        if self.selected is not None:
            self.selected.error(message)
        super().error(message)

    def format_help(self) -> str:
        more = "\n" + self.main_job.format_help() if self.main_job is not None else ""
        return super().format_help() + more


def command(name: str, text: str, add: Callable[[argparse.ArgumentParser], None]):
    """Register a command: its line in the help, the function adding its flags, and the command."""
    def deco(fn: Callable[..., Result]) -> Callable[..., Result]:
        COMMANDS[name] = (text, add, fn)
        return fn
    return deco


def build_parser(selected: str | None, implicit: bool = False) -> TopParser:
    """The parser tree; only `selected`'s flags are added (export's for `compress --help`)."""
    top = TopParser(prog="compress", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                    usage="compress [--version] [--json] {export,demo,teacher,bench} ...\n"
                          "       compress MODEL [options]")
    top.add_argument("--version", action="store_true", help="print the versions of this tool and its libraries")
    top.add_argument("--json", action="store_true", help="machine-readable output on stdout (see below)")
    # listed by DESCRIPTION (with `compress MODEL`), so argparse's own list is hidden
    sub = top.add_subparsers(dest="command", parser_class=Parser, help=argparse.SUPPRESS)
    for name, (text, add, fn) in COMMANDS.items():
        # `compress MODEL` points its errors at `compress --help`, `compress export MODEL` at its own
        prog = "compress" if implicit and name == "export" else f"compress {name}"
        p = sub.add_parser(name, help=text, prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=EXIT if name != "teacher" else None)
        p.set_defaults(run=fn)
        if name == (selected or "export"):
            add(p)
            top.main_job, top.selected = (p, None) if selected is None else (None, p)
    return top


def route(argv: list[str]) -> tuple[str | None, list[str], bool]:
    """The command named by argv, argv for the parser tree, and whether export was implied: a first argument
    that names no command is export's model (`compress model.pt ...`); a mistyped command is an error."""
    i = next((k for k, x in enumerate(argv) if x != "--json"), len(argv))
    first = argv[i] if i < len(argv) else None
    if first in COMMANDS:
        return first, argv, False
    if first in ("-h", "--help", "--version"):
        return None, argv, False
    if first is None:
        raise CompressError(f"give a model file or a command ({', '.join(COMMANDS)}); see compress --help")
    if not first.startswith("-") and not os.path.exists(first) and not any(c in first for c in "./\\"):
        raise CompressError(f"unknown command {first!r}; choose one of: {', '.join(COMMANDS)}, or give a model "
                            f"file (compress MODEL); see compress --help")
    return "export", [*argv[:i], "export", *argv[i:]], True


def json_requested(argv: list[str]) -> bool:
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


@contextlib.contextmanager
def stdout_to_stderr(on: bool) -> Iterator[None]:
    """--json: stdout carries the result alone, so whatever else a run prints (ours, a library's, a
    subprocess's: onnx2tf and converters print to stdout) goes to stderr, file descriptor 1 included."""
    if not on:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(Exception):
            sys.__stdout__.flush()
        os.dup2(saved, 1)
        os.close(saved)


def versions() -> dict[str, str | None]:
    """This tool's version and its libraries' (None: not installed), read from package metadata: nothing
    heavy is imported. tensorflowjs is the converter environment's (.venv-tfjs, a TensorFlow of its own),
    named by `tensorflowjs_env`, when it exists."""
    import platform
    from importlib import metadata

    import compressor
    from exporters import tfjs

    out: dict[str, str | None] = {"compress": compressor.__version__, "python": platform.python_version()}
    for name in ("torch", "onnx", "onnxruntime", "tensorflow", "tensorflowjs"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    env = tfjs.converter().parent.parent  # <venv>/bin/tensorflowjs_converter
    sites = [str(p) for p in env.glob("lib/python*/site-packages")]
    found = {d.metadata["Name"].lower().replace("_", "-"): d.version
             for d in metadata.distributions(path=sites)} if sites else {}
    if "tensorflowjs" in found:
        out["tensorflowjs"], out["tensorflowjs_env"] = found["tensorflowjs"], str(env)
        out["tensorflowjs_tensorflow"] = found.get("tensorflow-cpu") or found.get("tensorflow")
    return out


def version_text(v: dict[str, str | None]) -> str:
    lines = [f"{k} {x if x is not None else 'not installed'}" for k, x in v.items()
             if not k.startswith("tensorflowjs_")]
    if v.get("tensorflowjs_env"):
        lines[-1] += f" (in {v['tensorflowjs_env']}, with tensorflow {v['tensorflowjs_tensorflow']})"
    return "\n".join(lines)


def fail(message: str, code: int, as_json: bool) -> int:
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}))
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = json_requested(argv)
    from .runs import run_folder, sigterm_as_interrupt

    received: list[int] = []
    try:
        with sigterm_as_interrupt(received):
            selected, argv, implicit = route(argv)
            a = build_parser(selected, implicit).parse_args(argv)
            if a.version:
                print(json.dumps(versions(), indent=1) if as_json else version_text(versions()))
                return 0
            if a.command is None:
                raise CompressError(f"give a model file or a command ({', '.join(COMMANDS)}); see compress --help")
            with run_folder(), stdout_to_stderr(as_json):
                code, doc = a.run(a, as_json)
        if as_json and doc is not None:
            sys.stdout.write(doc if doc.endswith("\n") else doc + "\n")  # the manifest's text, byte for byte
            sys.stdout.flush()
        return code
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - every failure ends in one line and its status
        if received or isinstance(e, KeyboardInterrupt):
            # an interrupt that landed inside an asyncio task (Playwright's) is otherwise logged again, with
            # its traceback, when the task is collected at exit
            logging.getLogger("asyncio").disabled = True
        if received:  # whatever the interrupt became on its way up: an extension's import wraps it in ImportError
            return fail("terminated (SIGTERM); the previous output is unchanged", 143, as_json)
        if isinstance(e, CompressError):  # 2 bad input, 3 parity, 4 budget, 5 converter (core/errors.py)
            return fail(str(e), e.exit_code, as_json)
        if isinstance(e, KeyboardInterrupt):
            return fail("interrupted; the previous output is unchanged", 130, as_json)
        # a bug of this tool: the traceback for the report, then its own status, never 1 (a CI gate's regression)
        import traceback

        traceback.print_exc()
        return fail(f"internal error ({type(e).__name__}: {' '.join(str(e).split())[:200]}); the previous output is "
                    "unchanged: please report it with the traceback above", INTERNAL, as_json)


INTERNAL = 70  # EX_SOFTWARE (sysexits.h): distinct from 1, which a CI script reads as "the gate found a regression"


@command("export", "load, (distil, quantize,) export and verify a model: compress MODEL [options]",
         lambda p: cli_options.add_run_arguments(p, with_model=True))
def export_main(a: argparse.Namespace, as_json: bool) -> Result:
    if not a.model:
        raise CompressError("give a model file: compress MODEL [options] (or compress demo); see compress --help")
    cfg = config_from_args(a, a.model[0], tuple(a.model[1:]))
    from . import pipeline

    pipeline.run(cfg)
    return 0, cli_options.finish(a, cfg, as_json)


@command("demo", "the same on the built-in digits teacher (no model needed)",
         lambda p: cli_options.add_run_arguments(p, with_model=False))
def demo_main(a: argparse.Namespace, as_json: bool) -> Result:
    cfg = config_from_args(a, "demo")  # options checked before the teacher's training, not after
    from rich.console import Console

    from . import demo, pipeline

    console = Console(stderr=True)
    if not demo.teacher_path_cached():
        from .outputs import check_target

        check_target(cfg.out, cfg.overwrite)  # a bad --out fails before the teacher's training, not after
        from rich.progress import Progress

        with Progress(console=console) as bar:
            task = bar.add_task("training the built-in digits teacher (once; cached)", total=demo.EPOCHS)
            demo.teacher_path(progress=lambda epoch, acc: bar.update(
                task, advance=1, description=f"training the built-in teacher: val accuracy {acc:.3f}"))
    pipeline.run(cfg, console)
    return 0, cli_options.finish(a, cfg, as_json)


def _teacher_arguments(p: argparse.ArgumentParser) -> None:
    from .demo import FORMATS

    p.description = "Write the built-in digits teacher."
    p.add_argument("file", type=Path)
    p.add_argument("--format", default="torchscript", help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("--json", action="store_true", help="print {\"file\": ..., \"format\": ...} on stdout")


@command("teacher", "write the built-in teacher in a chosen format", _teacher_arguments)
def teacher_main(a: argparse.Namespace, as_json: bool) -> Result:
    from . import demo
    from .core.registry import check_choice

    check_choice("format", a.format, demo.FORMATS)
    demo.save_as(demo.teacher().module, a.file, a.format)
    if not as_json:
        print(a.file)
    return 0, json.dumps({"file": str(a.file), "format": a.format})


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    from benchmarks import cli as bench_cli

    p.description, p.epilog = bench_cli.DESCRIPTION, bench_cli.EPILOG
    bench_cli.add_arguments(p)


@command("bench", "time artifacts on cpu/mobile/browser; --save/--compare a CI baseline", _bench_arguments)
def bench_main(a: argparse.Namespace, as_json: bool) -> Result:
    from benchmarks.cli import run

    return run(a)

def entry() -> NoReturn:
    """The `compress` command: main(), then an exit that skips the interpreter's teardown.

    With torch and TensorFlow loaded, tearing their modules down took ~2 s after the work was done (measured:
    2.1 s against 0.3 s). atexit handlers still run and the streams are flushed; while a non-daemon thread is
    still alive the ordinary exit, which waits for it, is taken instead.
    """
    code = main()
    import atexit
    import threading

    if any(t is not threading.current_thread() and t.is_alive() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()  # the public atexit has no "run now"; this is what the interpreter's exit calls
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
