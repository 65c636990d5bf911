"""How often the README's latency gate cries wolf, and how often it catches a 15% slowdown.

    .venv/bin/python -m benchmarks.gate_rates --runs 20     # ~20-25 min on a shared 2-core machine
    .venv/bin/python -m benchmarks.gate_rates --runs 1 --quick    # the test's tiny mode (--bounds quick)

Protocol. `compress demo --target onnx` makes an output folder `out/`; a copy of it gets a genuinely
slower model: the same graph with a chain of `t + t * 0` units (an elementwise Mul and Add on the first
layer's activations, same outputs) after its first node, the number of units sized by measurement
(interleaved fresh processes, best process as the gate takes it, 1 thread) so that the model is `--slowdown`
(15%) slower; its manifest gets the new digest, as a re-export would write it. Then, `--runs` times:
the README's save command on the unchanged folder, the README's compare command on the unchanged folder
(an A/A gate) and on the slower copy (against the same baseline, in alternating order), exactly as
written (README_SAVE, README_COMPARE; `--quick` appends `--bounds quick`). It prints each verdict with
the gate's ratios, both rates, the slowdown as the gates measured it, the wall time and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

README_SAVE = "compress bench out/ --targets cpu --save baseline.json"
README_COMPARE = "compress bench out/ --targets cpu --compare baseline.json --fail-slower 10% --fail-larger 5%"


def _compress() -> str:
    exe = Path(sys.executable).with_name("compress")  # the venv's entry point beside this interpreter
    return str(exe) if exe.exists() else "compress"


def sh(command: str, cwd: Path, extra: list[str]) -> tuple[int, float]:
    """Run a README command in `cwd`; (exit status, seconds). Exit 2 (bad input) stops the script."""
    argv = shlex.split(command)
    argv[0] = _compress()
    t0 = time.perf_counter()
    p = subprocess.run(argv + extra, cwd=cwd, capture_output=True, text=True, check=False)
    if p.returncode not in (0, 1):
        sys.exit(f"`{command}` exited {p.returncode} in {cwd}: {(p.stderr.strip().splitlines() or [''])[-1]}")
    return p.returncode, time.perf_counter() - t0


def slower_model(src: Path, dst: Path, units: int) -> None:
    """src with `units` elementwise units t -> t + t * 0 on its input: the same outputs, more work.

    On the input, not between two layers: there the chain would also break a fusion (Conv+Relu), and
    the cost would not grow in proportion to the units, which the calibration assumes.
    """
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    first = g.input[0].name
    t = first
    new = []
    for k in range(units):
        new += [helper.make_node("Mul", [t, "gate_rates_zero"], [f"gate_rates_m{k}"]),
                helper.make_node("Add", [t, f"gate_rates_m{k}"], [f"gate_rates_a{k}"])]
        t = f"gate_rates_a{k}"
    for n in g.node:  # every consumer of the input reads the chain's end instead
        for i, name in enumerate(n.input):
            if name == first:
                n.input[i] = t
    for i, n in enumerate(new):
        g.node.insert(i, n)
    g.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), "gate_rates_zero"))
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def redigest(folder: Path) -> None:
    """The manifest's size and sha256 of each artifact, as the export would have written them."""
    from compressor.core.files import digest

    man = json.loads((folder / "manifest.json").read_text())
    for a in man["artifacts"]:
        a["size_bytes"], a["sha256"] = digest(folder / a["path"])
    (folder / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")


def interleaved_ratios(base: Path, others: list[Path], threads: int, rounds: int, bounds: str) -> list[float]:
    """Each other's best process / base's (per-process lower quartiles, as the gate compares them), all measured
    round-robin (back and forth) in fresh processes, so that the neighbours' load lands on every model alike."""
    from .discover import discover
    from .harness import PRESETS, Job, run_isolated
    from .stats import process_stat

    it = discover([base])[0][0]
    paths = [base, *others]
    obs: dict[Path, list[float]] = {p: [] for p in paths}
    for r in range(rounds):
        for path in paths if r % 2 == 0 else paths[::-1]:
            res = run_isolated(Job("onnxruntime", str(path), it.input_shape, it.input_dtype,
                                   replace(PRESETS[bounds], batch=0), threads=threads))
            if "error" in res:
                sys.exit(f"measuring {path}: {res['error']}")
            obs[path].append(process_stat(res["samples_ms"]))
    return [float(min(obs[p]) / min(obs[base])) for p in others]


def calibrate(base: Path, dst: Path, slowdown: float, rounds: int, bounds: str, probes: tuple[int, int] = (16, 48)) -> int:
    """Units that make `base` `slowdown` slower at 1 thread (the caller measures the final count again).

    Two probes measured together with the base give the cost of a unit by a least-squares line through
    the origin (one small probe alone drowns in noise: 4 units measured 1.004x once, which asked for 150);
    one correction follows if the chosen count misses by more than 2 points.
    """
    paths = [dst.with_name(f"probe{u}-{dst.name}") for u in probes]
    for u, p in zip(probes, paths):
        slower_model(base, p, u)
    ratios = interleaved_ratios(base, paths, 1, rounds, bounds)
    for p in paths:
        p.unlink()
    u = np.array(probes, float)
    per_unit = max(float(u @ (np.array(ratios) - 1) / (u @ u)), 1e-4)
    units = max(1, round(slowdown / per_unit))
    slower_model(base, dst, units)
    (ratio,) = interleaved_ratios(base, [dst], 1, rounds, bounds)
    if abs(ratio - 1 - slowdown) > 0.02:  # the cost grows with the units; a bounded step, not a leap
        units = max(1, round(units * float(np.clip(slowdown / max(ratio - 1, 1e-3), 0.5, 2.0))))
        slower_model(base, dst, units)
    return units


def gate_ratios(folder: Path) -> dict[str, float]:
    """The latency ratios the last compare wrote into folder/bench.json, per setting."""
    g = json.loads((folder / "bench.json").read_text()).get("gate") or {}
    return {r["setting"]: r["ratio"] for r in g.get("latency", [])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gate_rates", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="A/A gates and slowed gates, each (default 20)")
    ap.add_argument("--slowdown", type=float, default=0.15, help="the slower copy's target slowdown (0.15)")
    ap.add_argument("--quick", action="store_true", help="--bounds quick on the commands and in calibration (tests)")
    ap.add_argument("--folder", type=Path, help="an existing `compress demo --target onnx` output (skips the demo)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it, with every gate's bench.json "
                    "(default: a temporary folder)")
    a = ap.parse_args(argv)
    extra, bounds = (["--bounds", "quick"], "quick") if a.quick else ([], "default")
    work = a.keep or Path(tempfile.mkdtemp(prefix="gate-rates-"))
    aa, slow = work / "aa", work / "slow"
    t_start, loads = time.perf_counter(), [os.getloadavg()[0]]
    try:
        for d in (aa, slow):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        if a.folder:
            shutil.copytree(a.folder, aa / "out")
        else:
            subprocess.run([_compress(), "demo", "--target", "onnx", "--out", str(aa / "out")], check=True,
                           capture_output=True)
        shutil.copytree(aa / "out", slow / "out")
        model = next((aa / "out").glob("*.onnx"))
        units = calibrate(model, slow / "out" / model.name, a.slowdown, 2 if a.quick else 6, bounds)
        redigest(slow / "out")
        cal = {t: interleaved_ratios(model, [slow / "out" / model.name], t, 2 if a.quick else 6, bounds)[0]
               for t in dict.fromkeys((1, len(os.sched_getaffinity(0))))}
        grow = (slow / "out" / model.name).stat().st_size / model.stat().st_size
        if grow > 1.04:  # its gates would fail on --fail-larger 5%, and the latency rate would mean nothing
            sys.exit(f"the slower copy ({units} units) is {grow:.3f}x the size: its gates would fail on size")
        print(f"slower copy: {units} units; measured (interleaved, best process of each) "
              + ", ".join(f"{r:.3f}x at {t} thread(s)" for t, r in cal.items()) + f"; file {grow:.4f}x the size")
        print(f"commands: `{README_SAVE}`, then `{README_COMPARE}`" + (f" (+ {' '.join(extra)})" if extra else ""))
        aa_fail, slow_fail, ratios = 0, 0, {"aa": [], "slow": []}
        secs: list[float] = []
        for i in range(a.runs):
            code, s = sh(README_SAVE, aa, extra)
            secs.append(s)
            shutil.copy(aa / "baseline.json", slow / "baseline.json")
            verdicts: dict[str, Any] = {}
            for kind, cwd in (("aa", aa), ("slow", slow)) if i % 2 == 0 else (("slow", slow), ("aa", aa)):
                loads.append(os.getloadavg()[0])
                code, s = sh(README_COMPARE, cwd, extra)
                secs.append(s)
                verdicts[kind] = (code, gate_ratios(cwd / "out"))
                if a.keep:  # every gate's result, to look into a miss afterwards
                    shutil.copy(cwd / "out" / "bench.json", work / f"run{i + 1:02d}-{kind}.json")
                ratios[kind].append(verdicts[kind][1])
            aa_fail += verdicts["aa"][0] == 1
            slow_fail += verdicts["slow"][0] == 1
            print(f"run {i + 1}/{a.runs}: " + "; ".join(
                f"{'A/A' if k == 'aa' else 'slowed'} {'FAILED' if c else 'passed'} ("
                + ", ".join(f"{st} {r:.3f}" for st, r in rs.items()) + ")" for k, (c, rs) in sorted(verdicts.items()))
                + f"; load {loads[-1]:.1f}", flush=True)
        wall = time.perf_counter() - t_start
        loads.append(os.getloadavg()[0])
        measured = {st: float(np.median([r[st] for r in ratios["slow"] if st in r]))
                    for st in (ratios["slow"][0] if ratios["slow"] else {})}
        aa_all = [v for r in ratios["aa"] for v in r.values()]
        print(f"A/A false-positive rate: {aa_fail}/{a.runs} gates failed (target <= 1 in 20)"
              + (f"; A/A ratios {min(aa_all):.3f}-{max(aa_all):.3f}" if aa_all else ""))
        print(f"{100 * a.slowdown:.0f}% slowdown detection rate: {slow_fail}/{a.runs} gates failed (target >= 19 in 20); "
              "slowdown as the gates measured it (median ratio): "
              + ", ".join(f"{st} {r:.3f}x" for st, r in measured.items()))
        print(f"wall time: {wall / 60:.1f} min ({len(secs)} bench runs, {np.mean(secs):.1f} s each on average); "
              f"load average (1 min) {np.mean(loads):.2f} mean, {min(loads):.2f}-{max(loads):.2f}, "
              f"on {os.cpu_count()} logical cores")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
