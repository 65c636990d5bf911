"""The terminal summary table printed at the end of a run."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _pct(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.2f}%"


def print_run(manifest: dict[str, Any], out: Path, console: Console) -> None:
    for role in ("teacher", "student"):
        m = manifest.get(role)
        if m:
            acc = m.get("test_accuracy")
            known = acc is not None and not math.isnan(acc)
            console.print(f"{role}: {m['parameters']:,} parameters, "
                          + (f"test accuracy {_pct(acc)}" if known else "no test accuracy (the data has no labels)"))
    table = Table(title=f"artifacts in {out}")
    table.add_column("artifact", no_wrap=True)  # file paths are in manifest.json
    # n: held-out inputs compared; max|Δ| and agreement are against PyTorch's outputs on them
    for col in ("size", "n", "max|Δ|", "agree", "accuracy", "parity"):
        table.add_column(col, justify="right")
    for a in manifest["artifacts"]:
        p = a.get("parity") or {}
        table.add_row(a["name"], human_bytes(a["size_bytes"]), str(p.get("n_samples", "-")), f"{p.get('max_abs_diff', float('nan')):.1e}",
                      _pct(a.get("top1_agreement")), _pct(a.get("accuracy")),  # none for a bundle's one-example check
                      "[green]pass[/]" if p.get("passed") else "[red]FAIL[/]")
    console.print(table)
    if (manifest.get("data") or {}).get("random"):
        console.print("parity on random inputs (--data random): no accuracy; give real data to measure it")
