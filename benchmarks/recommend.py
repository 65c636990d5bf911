"""The artifact to ship per target: the fastest one within the accuracy budget, ties broken by size.

Every artifact in a run already passed its parity check and, for int8, its accuracy budget (the export
refuses the others), so the candidates are the counted rows (timed, parity checked on the timing inputs).
Two rows whose 95% intervals of the median overlap are level: the measurement cannot tell them apart
(a neighbour's load moves both), so the smaller file wins among the level ones (fp16 beside fp32 on x86).
"""
from __future__ import annotations

from typing import Any

FAMILIES = ("cpu 1 thread", "cpu all cores", "mobile-emulated", "browser")


def family(row: dict[str, Any]) -> str:
    if row["target"] == "browser":
        return "browser"
    if row["target"] == "mobile":
        return "mobile-emulated"
    return "cpu 1 thread" if row.get("threads") == 1 else "cpu all cores"


def level(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two timed rows the measurement cannot tell apart: their 95% intervals of the median overlap."""
    sa, sb = a["summary_ms"], b["summary_ms"]
    return sa["ci_low"] <= sb["ci_high"] and sb["ci_low"] <= sa["ci_high"]


def mark_level(rows: list[dict[str, Any]]) -> None:
    """Give each timed row `level_with`: the other rows of its target family it cannot be ranked against."""
    timed = [r for r in rows if "summary_ms" in r]
    for r in timed:
        r["level_with"] = [f"{o['artifact']} on {o['setting']}" for o in timed
                           if o is not r and family(o) == family(r) and level(r, o)]


def recommend(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{target family: the recommended artifact, the row it rests on, and why}."""
    sizes = {a["name"]: a.get("size_bytes") for a in result["artifacts"]}
    formats = {a["name"]: a.get("format") for a in result["artifacts"]}
    out: dict[str, dict[str, Any]] = {}
    for fam in FAMILIES:
        rows = [r for r in result["rows"] if r.get("counted") and "summary_ms" in r and family(r) == fam
                and formats.get(r["artifact"]) not in ("torchscript", "pt2")]  # PyTorch itself is the reference
        if not rows:
            continue
        fastest = min(rows, key=lambda r: r["summary_ms"]["median"])
        tied = [r for r in rows if level(r, fastest)]
        pick = min(tied, key=lambda r: (sizes.get(r["artifact"]) or float("inf"), r["summary_ms"]["median"]))
        s = pick["summary_ms"]
        others = sorted({r["artifact"] for r in tied} - {pick["artifact"]})
        why = "the fastest" if pick is fastest else f"level with the fastest ({fastest['artifact']}) and smaller"
        if others and pick is fastest:
            why += f"; level with {', '.join(others)}, and the smallest of them"
        out[fam] = {"artifact": pick["artifact"], "setting": pick["setting"], "median_ms": s["median"],
                    "ci_ms": [s["ci_low"], s["ci_high"]], "size_bytes": sizes.get(pick["artifact"]), "why": why}
    return out


def markdown(rec: dict[str, dict[str, Any]]) -> str:
    if not rec:
        return "No artifact was timed with a passing parity check: nothing to recommend."
    lines = ["| target | artifact | setting | median ms (95% CI) | size | why |", "|---|---|---|---|---|---|"]
    for fam, r in rec.items():
        size = "-" if r["size_bytes"] is None else f"{r['size_bytes'] / 1024:.1f} KB"
        lines.append(f"| {fam} | {r['artifact']} | {r['setting']} | {r['median_ms']:.3g} "
                     f"({r['ci_ms'][0]:.3g}-{r['ci_ms'][1]:.3g}) | {size} | {r['why']} |")
    return "\n".join(lines)
