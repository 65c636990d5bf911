"""Real architectures through the whole chain: MobileNetV2 and ResNet-18 (written from their papers) and a
BERT-mini encoder (transformers' BertModel, L=4, H=256, A=4, as studies/real_inputs.py makes it),
`compress MODEL --target all` with an empty conversion cache, the same command again (nothing changed: the
run cache), then `compress bench OUT --targets cpu` (single-input models); one table.

    .venv/bin/python -m studies.real_models [--quick] [--models mobilenet_v2,resnet18,bert] [--keep DIR]

Also per model, ONNX Runtime against LiteRT float32 measured interleaved in one process (studies/runtime_gap.py:
ORT, ORT without its NCHWc layout transform, LiteRT with XNNPACK) at 1 thread and at all cores; for the
encoder, whose two token inputs `compress bench` does not take, that is its latency.

Per model: TorchScript at 224 px (--quick: tiny widths at 32 px), BatchNorm recalibrated on the
script's own smooth synthetic images (untrained weights: fine for latency and conversion, and the
recalibration makes outputs depend on the input). Per artifact: conversion seconds (the manifest's
convert_seconds; the export step's wall time per model is printed too), size, Transpose ops (TFLite),
parity, latency at 1 thread and at all cores with its peak RSS (bench.json), achieved GFLOP/s and its
share of the matmul peak bench measured on this machine. An untrained net's logits are nearly tied, so
its int8 (and at tiny widths its float16) often misses the agreement floors: a default variant that does is
skipped (the manifest's `skipped` says why, the table lists it); an artifact that still fails its check
makes `compress` write nothing, so the run is then repeated without it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FULL = {"size": 224, "widths": {"mobilenet_v2": 1.0, "resnet18": 1.0}, "classes": 1000, "samples": 200}
QUICK = {"size": 32, "widths": {"mobilenet_v2": 0.25, "resnet18": 1 / 16}, "classes": 10, "samples": 100}
TARGETS = ("onnx", "tflite", "tfjs", "onnx-web")  # --target all
TFLITE_VARIANTS = ("float32", "float16", "dynamic-int8", "int8")  # the default --variants
PARITY_EXIT, BUDGET_EXIT = 3, 4


def write_model(name: str, workdir: Path, cfg: dict[str, Any]) -> tuple[Path, Path]:
    """TorchScript of the architecture with recalibrated BatchNorm, and an .npz of smooth images."""
    import torch

    from compressor.architectures import build, recalibrate_bn, smooth_images

    torch.manual_seed(0)
    size = cfg["size"]
    model = recalibrate_bn(build(name, cfg["classes"], cfg["widths"][name]), smooth_images(64, size, seed=1))
    x = smooth_images(cfg["samples"], size, seed=2)
    path, data = workdir / f"{name}.pt", workdir / f"{name}.npz"
    torch.jit.trace(model, x[:1]).save(str(path))
    np.savez(data, x=x.numpy().astype(np.float32))
    return path, data


def compress(*args: str, log: Path, env: dict[str, str] | None = None) -> tuple[int, float]:
    """`compress ARGS` in a fresh process (output appended to `log`); (exit status, wall seconds)."""
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write(f"$ compress {' '.join(args)}\n")
        f.flush()
        code = subprocess.run([sys.executable, "-m", "compressor.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                              cwd=ROOT, env=env, check=False).returncode
    return code, time.perf_counter() - t0


def last_error(log: Path) -> str:
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("error:")]
    return lines[-1].removeprefix("error:").strip() if lines else "see the log"


def failed_artifact(error: str) -> str | None:
    """The artifact a parity or budget error names ("... for tflite:float16 ...", "tflite int8 cannot ...")."""
    m = re.search(r"\b(onnx-web|onnx|tflite|tfjs|web-bundle):([\w-]+)", error) or \
        re.search(r"\b(tflite) (int8) cannot meet", error)
    return f"{m.group(1)}:{m.group(2)}" if m else None


def without(name: str, targets: list[str], variants: list[str]) -> tuple[list[str], list[str]]:
    """The targets and TFLite variants left when artifact `name` is dropped."""
    fmt, variant = name.split(":")
    if fmt == "tflite":
        variants = [v for v in variants if v != variant]
        return (targets if variants else [t for t in targets if t != "tflite"]), variants
    target = {"web-bundle": "tfjs" if variant == "tfjs" else "onnx-web"}.get(fmt, fmt)
    return [t for t in targets if t != target], variants


def run_model(name: str, workdir: Path, cfg: dict[str, Any], log=print) -> dict[str, Any]:
    """Convert, check and bench one architecture; the facts the table needs.

    `compress` writes nothing when one artifact fails its parity check (exit 3) or the int8 budget (exit
    4): the run is repeated without that artifact, and the table lists what was dropped and why.
    """
    out, clog = workdir / f"out_{name}", workdir / f"{name}.log"
    env = {**os.environ, "COMPRESS_CONVERSION_CACHE": str(workdir / "cache")}  # empty at first: a cold conversion
    if name == "bert":
        from studies.real_inputs import make_bert

        (workdir / "bert").mkdir(exist_ok=True)
        given = make_bert(workdir / "bert")
        model, rest = given[0], [a for a in given[1:] if a not in ("--target", "all")]
    else:
        model, data = write_model(name, workdir, cfg)
        rest = ["--input-shape", f"1,3,{cfg['size']},{cfg['size']}", "--data", str(data)]
    targets, variants, dropped = list(TARGETS), list(TFLITE_VARIANTS), []
    while True:
        args = [str(model), *rest, "--out", str(out), "--overwrite",
                "--target", ",".join(targets)]
        if "tflite" in targets and variants != list(TFLITE_VARIANTS):  # the defaults are skipped, not fatal, on a miss
            args += ["--variants", ",".join(variants)]
        log(f"{name}: compress --target {','.join(targets)} ...")
        code, wall = compress(*args, log=clog, env=env)
        error = re.sub(r"(; tried:|; nothing was written.*)$", "", last_error(clog).splitlines()[0]) if code else ""
        bad = failed_artifact(error) if code in (PARITY_EXIT, BUDGET_EXIT) else None
        if not bad or len(dropped) >= 4:
            break
        dropped.append(f"{bad}: {error}")
        log(f"{name}: {bad} failed ({error}); again without it ...")
        targets, variants = without(bad, targets, variants)
    if code != 0:
        return {"model": name, "error": f"compress exited {code}: {error}", "log": str(clog)}
    manifest = json.loads((out / "manifest.json").read_text())
    log(f"{name}: the same command again (nothing changed) ...")
    code, rerun = compress(*args, log=clog, env=env)
    cached = json.loads((out / "manifest.json").read_text()).get("run_cache", {}).get("status")
    res = {"model": name, "wall_s": wall, "rerun_s": rerun if code == 0 else None, "rerun_cache": cached,
           "dropped": dropped, "manifest": manifest, "bench": None}
    tfl = out / "tflite" / "model_float32.tflite"
    if tfl.exists():
        from studies.runtime_gap import measure

        log(f"{name}: ORT vs LiteRT, interleaved ...")
        res["gap"] = {t: measure(out / "model.onnx", tfl, threads=t, rounds=40) for t in (1, os.cpu_count() or 1)}
    if len(manifest["teacher"].get("inputs") or [None]) > 1:
        return res  # compress bench takes single-input models; the interleaved rows are its latency
    log(f"{name}: compress bench --targets cpu ...")
    bench_dir = workdir / f"bench_{name}"
    code, res["bench_wall_s"] = compress("bench", str(out), "--targets", "cpu", "--report", str(bench_dir), log=clog)
    if code != 0:
        return {**res, "error": f"compress bench exited {code}: {last_error(clog)}", "log": str(clog)}
    res["bench"] = json.loads((bench_dir / "bench.json").read_text())
    return res


def rows_of(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per artifact: the manifest's facts joined with bench.json's cpu rows."""
    bench = res["bench"] or {"machine": {}, "rows": []}
    peak = bench["machine"].get("matmul_gflops") or {}
    by_artifact: dict[str, dict[str, dict]] = {}
    for r in bench["rows"]:
        if "error" not in r:
            threads = r.get("config", {}).get("threads", 1)
            by_artifact.setdefault(r["artifact"], {})["1t" if threads == 1 else "all"] = r
    out = []
    for a in res["manifest"]["artifacts"]:
        p = a.get("parity") or {}
        timed = by_artifact.get(a["name"], {})
        row = {"model": res["model"], "artifact": a["name"], "convert_s": a.get("convert_seconds"),
               "size_mb": a["size_bytes"] / 1e6, "transposes": a.get("transpose_ops"),
               "parity": None if not p else ("ok" if p.get("passed") else "FAIL"),
               "max_diff": p.get("max_abs_diff"), "agreement": p.get("top1_agreement")}
        for tag, key in (("1t", "1_thread"), ("all", "all_cores")):
            r = timed.get(tag)
            if r:
                row[f"ms_{tag}"] = r["summary_ms"]["median"]
                row[f"rss_{tag}_mb"] = (r.get("peak_rss_bytes") or 0) / 1e6 or None
                row[f"gflops_{tag}"] = r.get("gflops")
                if r.get("gflops") and peak.get(key):
                    row[f"peak_share_{tag}"] = r["gflops"] / peak[key]
        out.append(row)
    return out


def fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of every artifact of every model, and one line per model."""
    head = ("| model | artifact | convert s | size MB | Transposes | parity (max abs diff, agreement) | "
            "ms 1 thread | ms all cores | peak RSS MB | GFLOP/s 1t (share of peak) | GFLOP/s all (share) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    notes = []
    for res in results:
        if "error" in res:
            notes.append(f"- {res['model']}: {res['error']} (log: {res['log']})")
            continue
        steps = res["manifest"].get("step_seconds") or {}
        rerun = "-" if res.get("rerun_s") is None else f"{res['rerun_s']:.1f} s ({res.get('rerun_cache') or 'no run cache'})"
        notes.append(f"- {res['model']}: `--target all` {res['wall_s']:.1f} s wall, empty conversion cache (steps: "
                     + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items() if v) + f"); again unchanged: {rerun}"
                     + "".join(f"; skipped {k}: {v}" for k, v in (res["manifest"].get("skipped") or {}).items())
                     + "".join(f"; dropped {d}" for d in res["dropped"]))
        for threads, g in sorted((res.get("gap") or {}).items()):
            base = g["ort"]["median"]
            notes.append(f"  - interleaved, {threads} thread(s): " + ", ".join(
                f"{k} {v['median']:.2f} ms ({v['median'] / base:.2f}x)" for k, v in g.items()))
        for r in rows_of(res):
            par = "-" if r["parity"] is None else \
                f"{r['parity']} ({fmt(r['max_diff'], '.1e')}, {fmt(r['agreement'], '.2f')})"
            lines.append(" | ".join([
                f"| {r['model']}", r["artifact"], fmt(r["convert_s"], ".1f"), fmt(r["size_mb"], ".1f"),
                fmt(r["transposes"], "d"), par, fmt(r.get("ms_1t"), ".2f"), fmt(r.get("ms_all"), ".2f"),
                fmt(r.get("rss_1t_mb"), ".0f"),
                f"{fmt(r.get('gflops_1t'), '.1f')} ({fmt(r.get('peak_share_1t'), '.0%')})",
                f"{fmt(r.get('gflops_all'), '.1f')} ({fmt(r.get('peak_share_all'), '.0%')})"]) + " |")
    return "\n".join(lines + [""] + notes)


def machine(results: list[dict[str, Any]]) -> str:
    res = next((r for r in results if r.get("bench")), None)
    if res is None:
        return "machine: no bench ran"
    m = res["bench"]["machine"]
    cpu = m.get("cpu") or {}
    peak = m.get("matmul_gflops") or {}
    return (f"machine: {cpu.get('model', '?')}, {cpu.get('usable_cores', os.cpu_count())} usable cores (flags: "
            f"{' '.join(cpu.get('flags') or []) or '-'}), {(m.get('memory_bytes') or 0) / 2**30:.0f} GiB, "
            f"{m.get('os', '?')}; fp32 matmul peak {fmt(peak.get('1_thread'), '.0f')} GFLOP/s (1 thread), "
            f"{fmt(peak.get('all_cores'), '.0f')} (all cores); load average at the bench "
            f"{m.get('load_avg_1m_5m_15m')}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny widths at 32 px (a smoke run)")
    p.add_argument("--models", default="mobilenet_v2,resnet18,bert")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (models, outputs, logs)")
    p.add_argument("--json", type=Path, help="also write the rows and machine facts as JSON here")
    a = p.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    names = [n.strip() for n in a.models.split(",") if n.strip()]
    with tempfile.TemporaryDirectory(prefix="real-models-") as tmp:
        workdir = a.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = [run_model(n, workdir, cfg, log=lambda m: print(m, file=sys.stderr, flush=True)) for n in names]
        print(machine(results))
        print(table(results))
        if a.json:
            a.json.write_text(json.dumps({"machine": machine(results), "config": {**cfg, "models": names},
                                          "rows": [r for res in results if "manifest" in res for r in rows_of(res)],
                                          "runs": [{k: res.get(k) for k in ("model", "wall_s", "rerun_s", "rerun_cache",
                                                                            "gap")} for res in results],
                                          "errors": [res for res in results if "error" in res]}, indent=1) + "\n")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
