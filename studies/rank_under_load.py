"""Does `compress bench` rank an output's float artifacts the same way twice in a row while the machine is loaded?

    .venv/bin/python -m studies.rank_under_load OUT [OUT ...] [--only onnxruntime-1t,litert-1t] [--burners 1]

For each output folder (a `compress MODEL --target all` output): start `--burners` processes that burn a
core each (`while True: pass`), run `compress bench OUT --targets cpu` twice, one after the other, then
stop them. Within each target family (1 thread, all cores) every pair of float artifact rows gets the
relation each run reports: `<` or `>` (ranked) or `=` (level: their intervals of the median overlap,
bench.json's `level_with`). A flip is a pair that one run ranks one way and the other run the other way;
a pair level in one run and ranked in the other is no flip (the measurement could not tell them apart).
Prints one table per folder and the number of flips; exit status 1 when there is one.
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.recommend import family

ROOT = Path(__file__).resolve().parents[1]


def bench(out: Path, only: str, report: Path) -> dict[str, Any]:
    """`compress bench OUT --targets cpu` (its default rounds) in a fresh process; bench.json."""
    args = [sys.executable, "-m", "compressor.cli", "bench", str(out), "--targets", "cpu", "--report", str(report)]
    p = subprocess.run(args + (["--only", only] if only else []), cwd=ROOT, capture_output=True, text=True,
                       check=False)
    if p.returncode != 0:
        sys.exit(f"compress bench {out} exited {p.returncode}: {(p.stderr.strip().splitlines() or [''])[-1]}")
    return json.loads((report / "bench.json").read_text())


def relations(result: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    """{(family, row a, row b): '<' | '>' | '='} over the float rows of each family (a before b by name)."""
    rows = [r for r in result["rows"] if "summary_ms" in r and "float" in r["artifact"]]
    out = {}
    for a, b in itertools.combinations(sorted(rows, key=lambda r: (r["artifact"], r["setting"])), 2):
        if family(a) != family(b):
            continue
        name_a, name_b = f"{a['artifact']} on {a['setting']}", f"{b['artifact']} on {b['setting']}"
        if name_b in a.get("level_with", []) or name_a in b.get("level_with", []):
            rel = "="
        else:
            rel = "<" if a["summary_ms"]["median"] < b["summary_ms"]["median"] else ">"
        out[(family(a), name_a, name_b)] = rel
    return out


def compare(first: dict[str, Any], second: dict[str, Any]) -> tuple[list[str], int]:
    """Table lines and the number of flips between two runs' relations."""
    r1, r2 = relations(first), relations(second)
    lines, flips = [], 0
    for key in sorted(r1.keys() & r2.keys()):
        fam, a, b = key
        flip = {r1[key], r2[key]} == {"<", ">"}
        flips += flip
        lines.append(f"  {fam:13s} {a} {r1[key]} / {r2[key]} {b}" + ("   FLIP" if flip else ""))
    runs = [{f"{r['artifact']} on {r['setting']}": r["summary_ms"]["median"] for r in res["rows"]
             if "summary_ms" in r and "float" in r["artifact"]} for res in (first, second)]
    for name in sorted(runs[0]):
        lines.append(f"  median ms {name}: {runs[0][name]:.3f} / {runs[1].get(name, float('nan')):.3f}")
    return lines, flips


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outs", nargs="+", type=Path, help="compress output folders")
    p.add_argument("--only", default="", help="keep only these bench settings, e.g. onnxruntime-1t,litert-1t")
    p.add_argument("--burners", type=int, default=1, help="CPU-burning processes during both runs (default 1)")
    a = p.parse_args(argv)
    total = 0
    for out in a.outs:
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.burners)]
        try:
            with tempfile.TemporaryDirectory(prefix="rank-under-load-") as tmp:
                runs = [bench(out, a.only, Path(tmp) / f"run{i}") for i in (1, 2)]
        finally:
            for b in burners:
                b.kill()
                b.wait()
        lines, flips = compare(*runs)
        total += flips
        load = [r["rows"][0].get("load_avg_1m") for r in runs if r["rows"]]
        print(f"{out} ({a.burners} burner(s); load average at the first row {load}): "
              f"{flips} flip(s) between run 1 and run 2 (relation run 1 / run 2)")
        print("\n".join(lines), flush=True)
    print(f"flips in all: {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
