"""`compress bench`: argument parsing and the command's logic (compressor/cli.py only registers it).

    compress bench OUT_DIR_OR_FILES --targets cpu,mobile,browser --save baseline.json
    compress bench OUT_DIR --compare baseline.json --fail-slower 10% --fail-larger 5% --max-accuracy-drop 1.0
    compress bench --ab A B --fail-slower 10%          (interleaved A B A B ..., gates on B/A)
Exit status: 0 ok, 1 a gate failed (a budget exceeded, or a baseline row not measured), 2 bad input
(also: files that differ from their manifest without --accept-modified, a baseline of another schema,
or of another machine with --fail-other-machine). Rules: docs/benchmarks.md#the-gate.
`compress bench` parses these flags in compressor/cli.py's parser tree (`add_arguments`) and calls `run`;
with --json, `run`'s document (bench.json's, with the gate's verdict) is what it prints on stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from compressor.core.errors import CompressError

from .harness import PRESETS, Bounds

EPILOG = """rows: native rows are measured in interleaved rounds of fresh processes (--repeats, default 6); each
row's 95% interval of the median is over processes, and rows whose intervals overlap are reported level.
gate: a 1-thread latency row fails when its best fresh process (lower quartile of its samples; >= 5 processes
a side) is slower than the baseline's best by more than --fail-slower; all-core rows (--gate-all-cores) and rows
with fewer processes are shown, not gated. The table shows each ratio and the ratio of medians with a 95% interval.
Every row counted in the baseline whose setting this run measures must be measured again (missing,
erroring or NaN rows fail; --only/--targets narrow the settings). A baseline from another
machine is a loud warning (--fail-other-machine: refused). Devices (--device): see benchmarks/platforms.py;
--cpu-throttle 4 = DevTools mid-tier. --json: the result document (as bench.json, with the gate's verdict)
on stdout, the table and logs on stderr. Exit status: 0 passed, 1 gate failed, 2 bad input."""
DESCRIPTION = "Benchmark artifacts; optionally gate on a baseline."


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compress bench", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", type=Path, help="an output folder (with manifest.json) or artifact files")
    p.add_argument("--targets", default="cpu", help="cpu, mobile, browser or all; comma-separated (default cpu)")
    p.add_argument("--save", type=Path, help="write the results as a baseline JSON")
    p.add_argument("--compare", type=Path, help="baseline JSON to gate against")
    p.add_argument("--fail-slower", help="fail when significantly slower by more than this, e.g. 10%%")
    p.add_argument("--fail-larger", help="fail when an artifact grew by more than this, e.g. 5%%")
    p.add_argument("--max-accuracy-drop", type=float, help="fail when accuracy drops by more points than this")
    p.add_argument("--gate-all-cores", action="store_true", help="gate all-core latency rows too (on a dedicated "
                   "machine; by default only 1-thread rows, which the neighbours' threads disturb least)")
    p.add_argument("--fail-other-machine", action="store_true", help="refuse a --compare baseline measured on "
                   "another CPU model, architecture or core count (default: a loud warning)")
    p.add_argument("--accept-modified", action="store_true", help="benchmark an output folder whose files no "
                   "longer match its manifest.json (refused by default); recorded in bench.json")
    p.add_argument("--ab", nargs=2, type=Path, metavar=("A", "B"), help="interleave A and B and gate on B/A")
    p.add_argument("--rounds", type=int, default=5, help="A/B rounds (default 5; >= 5 for a per-process test)")
    p.add_argument("--repeats", type=int, help="fresh processes per row, measured in interleaved rounds (default "
                   "6 for native rows, 1 for browser pages; the latency gate needs >= 5 on both sides)")
    p.add_argument("--only", default="", help="keep only these settings, e.g. onnxruntime-1t,litert-1t")
    p.add_argument("--device", default="pixel-7", help="emulated phone for the mobile target (default pixel-7)")
    p.add_argument("--cpu-throttle", type=float, help="CDP CPU throttling rate (default: the device's: 4 or 6)")
    p.add_argument("--mem-cap-mb", type=int, default=512, help="memory cap of the mobile LiteRT run (512)")
    p.add_argument("--backends", default="wasm,webgl,cpu", help="TF.js backends for the browser target")
    p.add_argument("--bounds", default="default", help=f"preset: {', '.join(PRESETS)}")
    for name, kind in (("warmup-runs", int), ("warmup-seconds", float), ("min-runs", int), ("min-seconds", float),
                       ("max-seconds", float), ("batch", int), ("max-runs", int)):
        p.add_argument(f"--{name}", type=kind, help="override the preset's value")
    p.add_argument("--report", type=Path, help="folder for bench.json, report.html and report.md "
                   "(default: the output folder given, if one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result document (with the gate's verdict) on "
                   "stdout; the table and logs go to stderr")


def bounds_from(a: argparse.Namespace) -> Bounds:
    from compressor.core.registry import check_choice

    check_choice("bounds preset", a.bounds, tuple(PRESETS))
    over = {k: getattr(a, k) for k in ("warmup_runs", "warmup_seconds", "min_runs", "min_seconds", "max_seconds",
                                       "batch", "max_runs") if getattr(a, k) is not None}
    return replace(PRESETS[a.bounds], **over)


def main(argv: list[str]) -> int:
    a = parser().parse_args(argv)
    code, doc = run(a)
    if a.json:
        print(doc)
    return code


def run(a: argparse.Namespace) -> tuple[int, str]:
    """The command on parsed flags: its exit status (0 passed, 1 gate failed) and its result as JSON text."""
    from rich.console import Console

    from .bench import BenchOptions
    from .gate import Budget, parse_percent
    from .platforms import PlatformOptions, expand

    console = Console(stderr=True)
    topts = PlatformOptions(device=a.device, cpu_throttle=a.cpu_throttle, mem_cap_mb=a.mem_cap_mb,
                          browser_backends=tuple(b.strip() for b in a.backends.split(",") if b.strip()))
    targets = tuple(t.strip() for t in a.targets.split(","))
    expand(targets, topts)  # unknown target/device names fail here, before any work
    opts = BenchOptions(targets=targets, bounds=bounds_from(a), platform_options=topts, seed=a.seed,
                        only=tuple(s.strip() for s in a.only.split(",") if s.strip()), repeats=a.repeats)
    opts.settings()
    budget = Budget(fail_slower=parse_percent(a.fail_slower, "--fail-slower") if a.fail_slower else None,
                    fail_larger=parse_percent(a.fail_larger, "--fail-larger") if a.fail_larger else None,
                    max_accuracy_drop=a.max_accuracy_drop, all_cores=a.gate_all_cores)
    if a.ab:
        return _ab(a, opts, budget, console)
    if not a.paths:
        raise CompressError("give an output folder or artifact files to benchmark (or --ab A B)")
    for p in a.paths:
        if not p.exists():
            raise CompressError(f"{p} does not exist")
    baseline = None
    if a.compare:
        baseline = _baseline(a)  # read it first: a bad baseline should fail before minutes of timing
    from . import bench, discover, gate, report

    changed = _verify(a.paths, a.accept_modified, console)  # before reading the files for their inputs
    items, manifest = discover.discover(a.paths)
    if not items:
        raise CompressError(f"nothing to benchmark in {', '.join(map(str, a.paths))}")
    for it in items:
        if any(c["name"] == it.name for c in changed):
            it.info["modified_since_manifest"] = True
    extra = {**report.sections_from(manifest), **({"modified_since_manifest": changed} if changed else {})}
    result = bench.run(items, opts, console=console, extra=extra)
    out = a.report or (a.paths[0] if len(a.paths) == 1 and a.paths[0].is_dir() else None)
    if a.save:
        gate.save(result, a.save)
        console.print(f"baseline written to {a.save}")
    g = gate.compare(baseline, result, budget) if baseline else gate.accuracy_vs_export(result, budget)
    result["gate"] = g.to_dict()
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        report.write(result, out)
        console.print(f"report: {out / 'report.html'}, {out / 'report.md'}")
    print(report.markdown_table(result), file=sys.stderr if a.json else sys.stdout)
    if baseline or g.accuracy:
        gate.print_gate(g, console)
    return 1 if g.failed else 0, json.dumps(result, indent=1, default=str)


def _baseline(a: argparse.Namespace) -> dict:
    from .gate import load, machine_differences
    from .machine import cpu_info

    baseline = load(a.compare)
    differs = machine_differences(baseline.get("machine"), {"cpu": cpu_info()})
    if differs and a.fail_other_machine:
        raise CompressError(f"baseline {a.compare} was measured on another machine ({'; '.join(differs)}); "
                            "record it on this machine type, or drop --fail-other-machine")
    return baseline


def _verify(paths: list[Path], accept: bool, console) -> list[dict]:
    """Output folders' files against their manifests: refused when changed, unless --accept-modified."""
    from . import discover

    changed = []
    for p in paths:
        if p.is_dir() and (p / "manifest.json").is_file():
            changed += discover.verify(p, discover.read_manifest(p), accept)
    for c in changed:
        console.print(f"[bold yellow]WARNING[/]: {c['path']} differs from its manifest.json "
                      f"({discover.difference(c)}); benchmarked as it is (--accept-modified): the manifest's "
                      "accuracy and parity describe the original file")
    return changed


def _ab(a: argparse.Namespace, opts, budget, console) -> tuple[int, str]:
    from . import ab, gate

    if a.paths or a.compare:
        raise CompressError("--ab A B takes no other paths and no --compare")
    changed = _verify(list(a.ab), a.accept_modified, console)
    doc, g = ab.run(ab.pair([a.ab[0]], [a.ab[1]]), opts, budget, rounds=a.rounds, console=console)
    if changed:
        doc["modified_since_manifest"] = changed
    if a.save:
        gate.save(doc, a.save)
    gate.print_gate(g, console, title="A/B interleaved: B vs A", sides=("A", "B"))
    return 1 if g.failed else 0, json.dumps(doc, indent=1, default=str)  # doc["gate"]: the verdict
