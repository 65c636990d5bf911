"""Run a benchmark: every artifact on every setting of the chosen targets, one fresh process or page each.

Native rows are measured in rounds (default stats.DEFAULT_ROUNDS): each round visits every row once,
in a fresh process, and the next round goes back the other way (A B C, C B A, ...). A neighbour's burst
then lands on every row alike instead of inflating whichever row was running, and each row gets one
median per process: its interval of the median is over processes (stats.median_ci_processes), and
rows whose intervals overlap are marked level (recommend.mark_level). Only the first round runs the
throughput phase (it is not what the rounds are for).

The result (bench.json) holds machine info, the bounds, per-artifact facts (size, gzip size,
parameters, MACs, accuracy) and one row per (artifact, setting): the summary statistics, raw
samples, load/first-inference times, throughput at batch 1 and at a larger batch, peak memory,
achieved GFLOP/s and parity against the reference. A browser row only counts with parity.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
from rich.console import Console

from compressor.core.checks import check_number
from compressor.core.errors import CompressError
from compressor.core.files import sizes
from compressor.core.parity import compare, rule
from compressor.core.registry import check_choice

from . import stats
from .discover import Item, canonical_shape, to_layout
from .gate import SCHEMA
from .harness import PRESETS, Bounds, Job, run_isolated
from .platforms import PlatformOptions, Setting, expand
from .recommend import mark_level, recommend

Reference = Callable[[np.ndarray], np.ndarray]  # canonical-layout inputs -> outputs


@dataclass(frozen=True)
class BenchOptions:
    targets: tuple[str, ...] = ("cpu",)
    bounds: Bounds = PRESETS["default"]
    platform_options: PlatformOptions = field(default_factory=PlatformOptions)
    parity_samples: int = 16
    seed: int = 0
    peak: bool = True  # measure the matmul peak (skipped in quick tests)
    only: tuple[str, ...] = ()  # keep only these setting names (e.g. the 1-thread rows a CI gate uses)
    # fresh processes/pages per row (rounds); None: stats.DEFAULT_ROUNDS for native rows, 1 for browser pages
    # (a page costs seconds and Chromium's own processes are shared anyway); >= 5 per side lets the gate test
    repeats: int | None = None

    def __post_init__(self) -> None:
        if self.repeats is not None and self.repeats < 1:
            raise CompressError("--repeats must be at least 1")
        # Bounds checks their order, not NaN or Inf: a NaN warm-up would never end, an Inf cap never bind
        for name in ("warmup_seconds", "min_seconds", "max_seconds", "batch_seconds"):
            check_number(f"--{name.replace('_', '-')}", getattr(self.bounds, name), 0, hint="seconds")

    def rounds(self, setting: Setting) -> int:
        if self.repeats is not None:
            return self.repeats
        return 1 if setting.browser else stats.DEFAULT_ROUNDS

    def settings(self) -> list[Setting]:
        all_ = expand(self.targets, self.platform_options)
        for name in self.only:
            check_choice("setting", name, [s.name for s in all_])
        return [s for s in all_ if not self.only or s.name in self.only]


ROW_PARITY = ("n_samples", "max_abs_diff", "top1_agreement", "max_abs_threshold", "min_top1_agreement", "passed")


def parity(outputs: Any, ref: np.ndarray, variant: str, kind: str = "logits") -> dict[str, Any]:
    """A row's parity on its timing inputs, by the "bench" rules of compressor.core.parity."""
    p = compare(outputs, ref, rule=rule("bench", variant, kind), runtime="", kind=kind).to_dict()
    return {k: p[k] for k in ROW_PARITY}


def item_facts(it: Item, macs: dict[str, int]) -> dict[str, Any]:
    facts = {"name": it.name, "path": str(it.path), "format": it.format, "variant": it.variant,
             "input_shape": list(it.input_shape), "input_dtype": it.input_dtype,
             **sizes(it.path, it.format), **macs, **it.info}
    return facts


def family_reference(it: Item, fallback: Reference | None) -> tuple[Reference | None, str]:
    """Without PyTorch: an ONNX or TFLite artifact is checked against the same file on the CPU runtime
    (its own family: same quantization, so random timing inputs are fair), TF.js against the float32
    ONNX model it was converted from."""
    if it.format == "onnx":
        from exporters.onnx import run as ort_run

        return (lambda x: ort_run(it.path, x)), "same artifact in onnxruntime (CPU)"
    if it.format == "tflite":
        from exporters.tflite.runner import Session

        def tfl(x: np.ndarray) -> np.ndarray:
            s = Session(it.path, 1)
            return np.concatenate([s.run(x[i:i + 1]) for i in range(len(x))])
        return tfl, "same artifact in the LiteRT interpreter (CPU)"
    return fallback, "float32 ONNX model in onnxruntime (CPU)" if fallback else "none"


def onnx_reference(items: list[Item]) -> Reference | None:
    """Outputs of the float32 ONNX artifact in ONNX Runtime: the root the other formats convert from."""
    from exporters.onnx import run

    onnx = [it for it in items if it.format == "onnx" and it.variant in ("float32", "file")]
    return (lambda x: run(onnx[0].path, x)) if onnx else None


def _row_from(setting: Setting, it: Item, res: dict[str, Any], facts: dict[str, Any],
              ref_out: np.ndarray | None) -> dict[str, Any]:
    row: dict[str, Any] = {"artifact": it.name, "format": it.format, "variant": it.variant,
                           "target": setting.target, "setting": setting.name, "reference": setting.reference,
                           "config": {k: v for k, v in asdict(setting).items() if v not in (None, False)}}
    if "error" in res:
        return {**row, "error": res["error"], "counted": False}
    samples = res.pop("samples_ms")
    bad = sum(1 for x in samples if not math.isfinite(x))
    if bad or not samples:  # a row with NaN timings is no measurement: never counted, so never gated as one
        return {**row, "error": f"{bad} of {len(samples)} timing samples are NaN or Inf", "counted": False}
    s = stats.summarize(samples)
    medians = res.get("process_medians_ms") or []
    if len(medians) > 1:  # the interval over processes: samples of one process share its luck
        s["ci_low"], s["ci_high"], s["confidence"] = stats.median_ci_processes(medians)
        s.update(ci_over="per-process medians (order statistics)", processes=len(medians),
                 process_min=min(medians), process_max=max(medians))
    else:  # one process or page: the bootstrap over its samples, narrower than the truth under load
        s.update(ci_over="samples of one process (bootstrap)", processes=1)
    outputs = res.pop("outputs", None)
    row.update(res)
    row["summary_ms"] = s
    row["samples_ms"] = samples
    row["throughput_per_s"] = {"batch_1": 1e3 / s["median"]}
    bs = res.get("batch_samples_ms")
    if bs:
        row["throughput_per_s"][f"batch_{res['batch']}"] = 1e3 * res["batch"] / float(np.median(bs))
    if facts.get("macs"):
        row["gflops"] = 2 * facts["macs"] / (s["median"] / 1e3) / 1e9
    kind = (it.info.get("export_parity") or {}).get("kind", "logits")  # the output's kind, from the export
    row["parity"] = parity(outputs, ref_out, it.variant, kind) if outputs is not None and ref_out is not None \
        else None
    # a browser number only counts with parity; native rows too when a reference exists
    row["counted"] = bool(row["parity"] and row["parity"]["passed"]) if setting.browser else \
        (row["parity"] is None or row["parity"]["passed"])
    return row


def plan(items: list[Item], settings: list[Setting]) -> list[tuple[Setting, Item]]:
    return [(s, it) for s in settings for it in items if it.format in s.formats]


def run(items: list[Item], opts: BenchOptions, *, reference: Reference | None = None,
        parity_inputs: np.ndarray | None = None, console: Console | None = None,
        extra: dict[str, Any] | None = None, model_counts: dict[str, int] | None = None,
        references: dict[str, Reference] | None = None) -> dict[str, Any]:
    """Benchmark `items` on the settings of opts.targets; returns the result document (bench.json)."""
    from . import machine
    from .macs import count

    console = console or Console(stderr=True)
    settings = opts.settings()
    todo = plan(items, settings)
    canon = canonical_shape(items)
    onnx = next((it for it in items if it.format == "onnx"), None)
    macs = model_counts or (count(onnx.path) if onnx else {})
    facts = {it.name: item_facts(it, macs) for it in items}
    fallback = onnx_reference(items)
    rng = np.random.default_rng(opts.seed)
    if parity_inputs is None:
        parity_inputs = rng.standard_normal((opts.parity_samples, *canon[1:])).astype(np.float32)
    refs: dict[str, tuple[np.ndarray | None, str]] = {}
    for it in items:
        if references and it.name in references:  # e.g. the teacher's row: checked against the teacher
            fn, kind = references[it.name], "pytorch"
        else:
            fn, kind = (reference, "pytorch") if reference else family_reference(it, fallback)
        xs = to_layout(parity_inputs, it.input_shape) if fn is not None and it.format in ("onnx", "tflite") \
            and not reference else parity_inputs
        try:
            refs[it.name] = (fn(xs) if fn is not None and xs is not None else None, kind)
        except Exception as e:
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise CompressError(f"the parity reference for {it.name} could not run ({first}); check that the "
                                "artifact loads in its runtime") from e
    rows: list[dict[str, Any]] = []
    with console.status("measuring the matmul peak ..."):
        mach = machine.info(peak=opts.peak)
    results: list[list[dict[str, Any]]] = [[] for _ in todo]
    rounds = [opts.rounds(setting) for setting, _ in todo]
    with tempfile.TemporaryDirectory(prefix="compress-bench-") as tmp, _Browsers(todo) as browsers:
        # rounds go round the whole plan, back and forth, so a slow spell of the neighbours hits every row alike
        for rep in range(max(rounds, default=0)):
            order = list(enumerate(todo))
            for i, (setting, it) in order if rep % 2 == 0 else order[::-1]:
                if rep >= rounds[i]:
                    continue
                xs = to_layout(parity_inputs, it.input_shape) if rep == 0 else None
                label = f"[{i + 1}/{len(todo)}] {it.name} on {setting.target}/{setting.name}" + \
                    (f" (round {rep + 1}/{rounds[i]})" if rounds[i] > 1 else "")
                load = os.getloadavg()[0]  # the neighbours' load, to read multi-thread rows by
                with console.status(label + " ..."):
                    res = measure_one(setting, it, opts, browsers, Path(tmp), xs, throughput=rep == 0)
                res["load_avg_1m"] = round(load, 2)
                results[i].append(res)
        for i, (setting, it) in enumerate(todo):
            res = merge(results[i])
            xs = to_layout(parity_inputs, it.input_shape)
            label = f"[{i + 1}/{len(todo)}] {it.name} on {setting.target}/{setting.name}"
            ref_out, kind = refs[it.name]
            row = _row_from(setting, it, res, facts[it.name], ref_out if xs is not None else None)
            row["parity_reference"] = kind
            rows.append(row)
    mark_level(rows)
    for i, ((setting, it), row) in enumerate(zip(todo, rows)):
        console.print(_line(f"[{i + 1}/{len(todo)}] {it.name} on {setting.target}/{setting.name}", row))
    result = {"schema": SCHEMA, "kind": "edge-compress bench",
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": mach, "bounds": asdict(opts.bounds), "targets": list(opts.targets),
            "settings": [st.name for st in settings],  # what this run measured: the gate's scope
            "target_options": asdict(opts.platform_options),  # bench.json schema 1 keeps its key
            "statistics": {"summary": "median, IQR, p90, min of the pooled samples; 95% CI of the median over "
                                      "per-process medians (order statistics; one process: bootstrap of its samples)",
                           "level": "rows of one target family whose intervals overlap (level_with)",
                           "gate": _gate_text(rounds)},
            "repeats": max(rounds, default=0), "rounds": {s.name: opts.rounds(s) for s in settings},
            "parity_reference": "pytorch (real held-out inputs)" if reference
            else "per row: ONNX/TFLite against the same file on the CPU, TF.js against the float32 ONNX model",
            "artifacts": list(facts.values()), "rows": rows, **(extra or {})}
    result["recommended"] = recommend(result)  # per target: the fastest within the budget, ties by size
    return result


def _gate_text(rounds: list[int]) -> str:
    """Which latency test a --compare of this run can apply (browser rows default to one page)."""
    gated = [n >= stats.MIN_PROCESSES for n in rounds]
    if all(gated):
        return stats.TEST_PROCESS
    return f"{stats.TEST_PROCESS} (rows with fewer processes: {stats.TEST_SAMPLES})" if any(gated) \
        else stats.TEST_SAMPLES


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Results of one row from several fresh processes: samples pooled, per-process medians kept."""
    ok = [r for r in results if "error" not in r]
    if not ok:
        return results[0]
    out = dict(ok[0])
    out["samples_ms"] = [x for r in ok for x in r["samples_ms"]]
    out["process_medians_ms"] = [float(np.median(r["samples_ms"])) for r in ok]
    out["process_p25_ms"] = [stats.process_stat(r["samples_ms"]) for r in ok]  # the gate's observations
    if len(ok) > 1:
        out["batch_samples_ms"] = [x for r in ok for x in r.get("batch_samples_ms") or []] or None
        for k in ("load_ms", "first_ms", "load_avg_1m"):
            out[k] = float(np.median([r[k] for r in ok if k in r]))
        for k in ("peak_rss_bytes", "peak_js_heap_bytes"):
            vals = [r[k] for r in ok if r.get(k)]
            if vals:
                out[k] = max(vals)
    if len(ok) < len(results):
        out["failed_repeats"] = [r["error"] for r in results if "error" in r]
    return out


def measure_one(setting: Setting, it: Item, opts: BenchOptions, browsers: _Browsers, tmp: Path,
                xs: np.ndarray | None, *, throughput: bool = True) -> dict[str, Any]:
    """One measurement: a fresh page in the shared Chromium, or a fresh worker process."""
    bounds = opts.bounds if throughput else replace(opts.bounds, batch=0)
    if setting.browser:
        return browsers.get().measure(setting, it.path, it.input_shape, it.input_dtype, bounds, xs,
                                      seed=opts.seed)
    npy = None
    if xs is not None:
        npy = str(tmp / f"parity-{abs(hash((setting.name, it.name)))}.npy")
        np.save(npy, xs.astype(it.input_dtype))
    return run_isolated(Job(setting.runner, str(it.path), it.input_shape, it.input_dtype, bounds,
                            threads=setting.threads, pin_core=setting.pin_core, mem_cap_mb=setting.mem_cap_mb,
                            parity_inputs=npy, seed=opts.seed))


def _line(label: str, row: dict[str, Any]) -> str:
    if "error" in row:
        return f"[yellow]![/] {label}: {row['error']}"
    s, p = row["summary_ms"], row.get("parity")
    par = "" if p is None else (f", parity {'ok' if p['passed'] else '[red]FAIL[/]'} "
                                f"(max|Δ| {p['max_abs_diff']:.1e})")
    mark = "[green]✓[/]" if row["counted"] else "[red]✗[/]"
    ci = f"{100 * s['confidence']:.0f}% CI {s['ci_low']:.4g}-{s['ci_high']:.4g}" + \
        (f" over {s['processes']} processes" if s.get("processes", 1) > 1 else "")
    lvl = f"; level with {', '.join(row['level_with'])}" if row.get("level_with") else ""
    return f"{mark} {label}: median {s['median']:.4g} ms ({ci}, IQR {s['iqr']:.3g}, n={s['n']}){par}{lvl}"


class _Browsers:
    """Starts Chromium lazily, once, only if some setting needs it."""

    def __init__(self, todo: list[tuple[Setting, Item]]) -> None:
        self.needed = any(s.browser for s, _ in todo)
        self._cm = None
        self._b = None

    def __enter__(self) -> Self:
        return self

    def get(self):
        if self._b is None:
            from .runners import browser

            self._cm = browser.session()
            self._b = self._cm.__enter__()
        return self._b

    def __exit__(self, *exc: object) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)
