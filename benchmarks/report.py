"""report.md and a self-contained report.html (inline CSS, plots embedded as PNG data URIs)."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from . import plots, recommend


def sections_from(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """What the report takes from the output folder's manifest (teacher/student accuracy, commit)."""
    if not manifest:
        return {}
    out = {k: manifest[k] for k in ("teacher", "student", "data", "distillation") if k in manifest}
    out["manifest_commit"] = manifest.get("commit")
    return out


def _kb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KB"


def _mem(r: dict[str, Any]) -> str:
    if r.get("peak_rss_bytes"):
        return f"{r['peak_rss_bytes'] / 2**20:.0f} MB RSS"
    if r.get("peak_js_heap_bytes"):
        return f"{r['peak_js_heap_bytes'] / 2**20:.1f} MB JS heap"
    return "-"


def _parity(r: dict[str, Any]) -> str:
    p = r.get("parity")
    if p is None:
        return "n/a"
    return f"{'ok' if p['passed'] else 'FAIL'} {p['max_abs_diff']:.1e}"


def _thr(r: dict[str, Any]) -> tuple[str, str]:
    t = r.get("throughput_per_s") or {}
    big = [k for k in t if k != "batch_1"]
    seq = " seq" if r.get("batch_mode") == "sequential" else ""  # fixed batch 1: back-to-back single calls
    other = f"{t[big[0]]:.0f} (b{big[0].split('_')[1]}{seq})" if big else "-"
    return (f"{t['batch_1']:.0f}" if "batch_1" in t else "-", other)


def _gflops(r: dict[str, Any], result: dict[str, Any]) -> str:
    """Achieved GFLOP/s and its share of this run's measured fp32 matmul peak at the row's thread count."""
    if not r.get("gflops"):
        return "-"
    peak = (result.get("machine") or {}).get("matmul_gflops") or {}
    # a machine can always do at least its 1-thread figure: on a loaded shared machine the all-cores
    # matmul can measure lower, which would make every multi-thread row look above peak
    p = peak.get("1_thread") if r.get("threads") == 1 else max(peak.get("all_cores") or 0, peak.get("1_thread") or 0)
    return f"{r['gflops']:.2f}" + (f" ({100 * r['gflops'] / p:.0f}%)" if p else "")


LATENCY_COLS = ("artifact", "target", "setting", "backend", "median ms", "95% CI", "IQR", "p90", "min", "runs",
                "/s b1", "/s batch", "memory", "GFLOP/s (% fp32 peak)", "parity vs ref", "counted")


def latency_rows(result: dict[str, Any]) -> list[list[str]]:
    out = []
    for r in result["rows"]:
        if "error" in r:
            out.append([r["artifact"], r["target"], r["setting"], "-", "error: " + r["error"][:80]] +
                       ["-"] * (len(LATENCY_COLS) - 6) + ["no"])
            continue
        s = r["summary_ms"]
        b1, bn = _thr(r)
        backend = r.get("backend") or r.get("runtime", "")
        out.append([r["artifact"], r["target"], r["setting"], str(backend), f"{s['median']:.4g}",
                    f"[{s['ci_low']:.4g}, {s['ci_high']:.4g}]", f"{s['iqr']:.3g}", f"{s['p90']:.4g}",
                    f"{s['min']:.4g}", str(s["n"]), b1, bn, _mem(r),
                    _gflops(r, result), _parity(r),
                    ("yes" if r["counted"] else "no") + (" (ref)" if r.get("reference") else "")])
    return out


ARTIFACT_COLS = ("artifact", "format", "variant", "size", "gzip", "parameters", "MACs", "accuracy",
                 "top-1 agreement with float", "export parity max|Δ|")


def artifact_rows(result: dict[str, Any]) -> list[list[str]]:
    out = []
    for a in result["artifacts"]:
        p = a.get("export_parity") or {}
        out.append([a["name"], a["format"], a["variant"], _kb(a.get("size_bytes")), _kb(a.get("gzip_bytes")),
                    f"{a['parameters']:,}" if a.get("parameters") else "-",
                    f"{a['macs']:,}" if a.get("macs") else "-",
                    f"{100 * a['accuracy']:.2f}%" if a.get("accuracy") is not None else "-",
                    f"{100 * p['top1_agreement']:.2f}%" if p.get("top1_agreement") is not None else "-",
                    f"{p['max_abs_diff']:.1e}" if p.get("max_abs_diff") is not None else "-"])
    return out


SUMMARY_COLS = ("artifact", "size (gzip)", "accuracy", "cpu 1 thread", "cpu all cores", "mobile-emulated",
                "browser")


def _cell(r: dict[str, Any]) -> str:
    s = r["setting"]
    what = (r.get("backend") if s.startswith("tfjs-") and "@" not in s else
            s.split("@")[1] if "@" in s else "ort-web" if s.startswith("ort-web") else
            "1 core" if s.startswith("litert-1core") else s.rsplit("-", 1)[0])
    return f"{r['summary_ms']['median']:.3g} ms ({what})"


def summary_rows(result: dict[str, Any]) -> list[list[str]]:
    """One line per artifact: median latency (batch 1) per target family; only counted rows."""
    out = []
    for a in result["artifacts"]:
        cells: dict[str, list[str]] = {c: [] for c in SUMMARY_COLS[3:]}
        for r in result["rows"]:
            if r["artifact"] != a["name"] or not r.get("counted") or "summary_ms" not in r:
                continue
            col = r["target"] if r["target"] == "browser" else "mobile-emulated" if r["target"] == "mobile" else \
                "cpu 1 thread" if r.get("threads") == 1 else "cpu all cores"
            cells[col].append(_cell(r))
        acc = a.get("accuracy")
        out.append([a["name"], f"{_kb(a.get('size_bytes'))} ({_kb(a.get('gzip_bytes'))})",
                    "-" if acc is None else f"{100 * acc:.2f}%"] + ["; ".join(v) or "-" for v in cells.values()])
    return out


def summary_table(result: dict[str, Any]) -> str:
    return _md(SUMMARY_COLS, summary_rows(result))


def _accuracy_note(result: dict[str, Any]) -> str:
    n = next(((a.get("export_parity") or {}).get("n_samples") for a in result["artifacts"]
              if (a.get("export_parity") or {}).get("n_samples")), None)
    if n is None:
        return "accuracy: from the output folder's manifest, where known."
    return (f"accuracy: on the {n} held-out inputs of the export parity check (the same inputs for every row, "
            "PyTorch rows included); teacher/student lines above are on the whole test split.")


def _md(cols: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(result: dict[str, Any]) -> str:
    return _md(LATENCY_COLS, latency_rows(result))


def _models_md(result: dict[str, Any]) -> str:
    lines = []
    for role in ("teacher", "student"):
        m = result.get(role)
        if m:
            acc = m.get("test_accuracy")
            lines.append(f"- {role}: {m.get('parameters', 0):,} parameters, test accuracy "
                         f"{'-' if acc is None else f'{100 * acc:.2f}%'}")
    return "\n".join(lines)


def _machine_lines(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    cpu = m["cpu"]
    peak = m.get("matmul_gflops") or {}
    rt = ", ".join(f"{k} {v}" for k, v in m["runtimes"].items())
    return [(f"CPU: {cpu['model']} ({cpu['arch']}), {cpu['usable_cores']} usable of {cpu['logical_cores']} cores, "
             f"flags: {' '.join(cpu['flags'])}"),
            (f"fp32 matmul peak (measured this run): {peak.get('1_thread', '-')} GFLOP/s on 1 thread, "
             f"{peak.get('all_cores', '-')} on all cores"),
            f"runtimes: {rt}", f"commit: {m['commit']}",
            (f"load average at start (1/5/15 min): {m.get('load_avg_1m_5m_15m')}; per row in bench.json "
             "(load_avg_1m): multi-thread rows suffer most when the machine is shared"),
            f"bounds: {result['bounds']}",
            f"statistics: {result['statistics']['summary']}; gate: {result['statistics']['gate']}",
            (f"parity reference: {result.get('parity_reference') or 'none'} "
             "(a browser row counts only when its outputs match it)")]


def _gate_md(result: dict[str, Any]) -> str:
    g = result.get("gate")
    if not g or not (g.get("latency") or g.get("size") or g.get("accuracy") or g.get("broken")):
        return ""
    lines = [f"## Gate: {'FAILED' if g['failed'] else 'passed'}", ""]
    lines += [f"## FAIL: {b}" for b in g.get("broken", [])]
    if g["latency"]:
        lines.append(_md(("artifact", "setting", "baseline ms (best)", "current ms (best)", "ratio",
                          "median ratio [95% CI]", "verdict"),
                         [[r["artifact"], r["setting"], f"{r['baseline_ms']:.4g}", f"{r['current_ms']:.4g}",
                           f"{r['ratio']:.3f}", f"{r['median_ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                           ("FAIL" if r["failed"] else "ok") if r.get("gated", True) else r["test"]]
                          for r in g["latency"]]))
    if g["accuracy"]:
        lines += ["", _md(("artifact", "against", "drop (points)", "budget", "verdict"),
                          [[r["artifact"], r["against"], f"{r['drop_points']:.2f}", str(r["budget_points"]),
                            "FAIL" if r["failed"] else "ok"] for r in g["accuracy"]])]
    return "\n".join(lines)


DISTILL_COLS = ("stage", "parameters", "epochs run", "best epoch", "best validation", "s/epoch", "steps/epoch")


def distill_settings(d: dict[str, Any]) -> str:
    """One line: where and how the student trained (the manifest's distillation section)."""
    batch = d.get("batch_size")
    accum = d.get("grad_accum") or 1
    batch_txt = f"batch {batch} x {accum} accumulated = {batch * accum}" if batch else "batch -"
    threads = f", {d['threads']} CPU threads" if d.get("threads") else ""
    return (f"device {d.get('device', '-')}, precision {d.get('precision', 'fp32')}, {batch_txt}, "
            f"{d.get('distributed_world_size', 1)} process(es){threads}, lr {d.get('lr', '-')}, "
            f"epochs {d.get('epochs', '-')}")


def distill_rows(d: dict[str, Any]) -> list[list[str]]:
    out = []
    for st in d.get("stages", []):
        val = st.get("val_score")
        out.append([st.get("name", "-"), f"{st['parameters']:,}" if st.get("parameters") else "-",
                    str(st.get("epochs_run", "-")), str(st.get("best_epoch", -1) + 1),
                    "-" if val is None else f"{100 * val:.2f}%" if val >= 0 else f"{val:.4g}",
                    f"{st['seconds_per_epoch']:.3g}" if st.get("seconds_per_epoch") else "-",
                    str(st.get("steps_per_epoch") or "-")])
    return out


def _distill_md(result: dict[str, Any], curve: Path | None) -> list[str]:
    d = result.get("distillation")
    if not d:
        return []
    md = ["## Distillation", "", f"- {distill_settings(d)}", "", _md(DISTILL_COLS, distill_rows(d)), ""]
    return md + ([f"![distillation]({curve.name})", ""] if curve else [])


def _recommended(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return result.get("recommended") or recommend.recommend(result)  # results saved before it existed


def _recommended_html(result: dict[str, Any]) -> str:
    md = recommend.markdown(_recommended(result))
    return _md_to_html(md) if md.startswith("|") else f"<p>{html.escape(md)}</p>"


def write(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write out/report.md, out/report.html and the plot PNGs; returns their paths."""
    out = Path(out)
    figs = {"latency": plots.latency_per_target(result["rows"]),
            "tradeoff": plots.tradeoff(plots.tradeoff_points(result))}
    paths = {}
    for name, png in figs.items():
        if png:
            paths[name] = out / f"bench-{name}.png"
            paths[name].write_bytes(png)
    curve = plots.loss_curve(result.get("distillation"))  # the manifest's loss curve, when a student was trained
    if curve:
        paths["distillation"] = out / "distill-curve.png"
        paths["distillation"].write_bytes(curve)
    md = ["# Benchmark report", "", _models_md(result), "", "## Summary: median latency at batch 1", "",
          summary_table(result), "", "## Recommended artifact per target", "", recommend.markdown(_recommended(result)),
          "", "## Artifacts", "", _accuracy_note(result), "",
          _md(ARTIFACT_COLS, artifact_rows(result)), "", "## Latency per artifact and target", "",
          markdown_table(result), "", _gate_md(result), "", *_distill_md(result, paths.get("distillation")),
          "## Plots", ""]
    md += [f"![{n}]({p.name})" for n, p in paths.items() if n in figs]
    md += ["", "## Machine", ""] + [f"- {line}" for line in _machine_lines(result)]
    paths["md"] = out / "report.md"
    paths["md"].write_text("\n".join(md) + "\n")
    paths["html"] = out / "report.html"
    paths["html"].write_text(_html(result, figs, curve))
    return paths


CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px}th{background:#f3f3f3}td.n{text-align:right}
tr.no td{color:#999}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}.fail{color:#b00;font-weight:bold}"""


def _table(cols: tuple[str, ...], rows: list[list[str]], counted_col: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in rows:
        cls = ' class="no"' if counted_col is not None and not row[counted_col].startswith("yes") else ""
        cells = "".join(f'<td{" class=n" if i > 2 else ""}>{html.escape(c)}</td>' for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _md_to_html(md: str) -> str:
    """The gate's markdown (headings and pipe tables only) as HTML."""
    out, table = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        if table:
            out.append(_table(tuple(table[0]), [r for r in table[2:]]))
            table = []
        if line.startswith("## "):
            out.append(f"<p><b>{html.escape(line[3:])}</b></p>")
    return "".join(out)


def _img(name: str, png: bytes) -> str:
    return f"<img alt='{name}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _html(result: dict[str, Any], figs: dict[str, bytes | None], curve: bytes | None = None) -> str:
    parts = [(f"<!doctype html><html><head><meta charset='utf-8'><title>Benchmark report</title><style>{CSS}"
              "</style></head><body><h1>Benchmark report</h1>")]
    models = _models_md(result)
    if models:
        parts.append("<ul>" + "".join(f"<li>{html.escape(x[2:])}</li>" for x in models.splitlines()) + "</ul>")
    parts.append("<h2>Summary: median latency at batch 1</h2>" + _table(SUMMARY_COLS, summary_rows(result)))
    parts.append("<h2>Recommended artifact per target</h2><p>The fastest within the accuracy budget; rows whose 95% "
                 "intervals overlap are level, and the smaller file wins among them.</p>"
                 + _recommended_html(result))
    parts.append(f"<h2>Artifacts</h2><p>{html.escape(_accuracy_note(result))}</p>"
                 + _table(ARTIFACT_COLS, artifact_rows(result)))
    parts.append("<h2>Latency per artifact and target</h2><p>Greyed rows do not count (no parity or an error)."
                 "</p>" + _table(LATENCY_COLS, latency_rows(result), counted_col=len(LATENCY_COLS) - 1))
    gate = _gate_md(result)
    if gate:
        parts.append("<h2>Gate</h2>" + _md_to_html(gate))
    if d := result.get("distillation"):
        parts.append(f"<h2>Distillation</h2><p>{html.escape(distill_settings(d))}</p>"
                     + _table(DISTILL_COLS, distill_rows(d)) + (_img("distillation", curve) if curve else ""))
    parts.append("<h2>Plots</h2>")
    for name, png in figs.items():
        if png:
            parts.append(_img(name, png))
    parts.append("<h2>Machine</h2><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in _machine_lines(result))
                 + "</ul></body></html>")
    return "\n".join(parts)
