"""Report figures drawn with matplotlib (Agg backend), returned as PNG bytes for embedding."""
from __future__ import annotations

import io
from typing import Any

COLORS = {"cpu": "#1f77b4", "mobile": "#d62728", "browser": "#2ca02c"}
# Which setting stands for an artifact in the trade-off plot: single-threaded CPU first (the most
# stable figure on a shared machine), then the browser's wasm backend for TF.js.
TRADEOFF_SETTINGS = ("litert-1t", "onnxruntime-1t", "torch-1t", "tfjs-wasm", "ort-web-wasm")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def latency_per_target(rows: list[dict[str, Any]]) -> bytes | None:
    """Median latency (bar) with IQR (whisker) of every counted row, grouped by target family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("counted") and r.get("summary_ms")]
    if not rows:
        return None
    order = {"cpu": 0, "mobile": 1, "browser": 2}
    rows = sorted(rows, key=lambda r: (order.get(r["target"], 9), r["setting"], r["artifact"]))
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2))
    ys = list(range(len(rows)))[::-1]
    med = [r["summary_ms"]["median"] for r in rows]
    lo = [r["summary_ms"]["median"] - r["summary_ms"]["q25"] for r in rows]
    hi = [r["summary_ms"]["q75"] - r["summary_ms"]["median"] for r in rows]
    ax.barh(ys, med, xerr=[lo, hi], color=[COLORS.get(r["target"], "grey") for r in rows], alpha=0.85,
            error_kw={"elinewidth": 1, "capsize": 2})
    ax.set_yticks(ys, [f"{r['artifact']} · {r['setting']}" for r in rows], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency per inference, batch 1 (ms, log scale); whiskers: IQR")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=t) for t, c in COLORS.items()], loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.set_title("Latency per target")
    return _png(fig)


def tradeoff(points: list[dict[str, Any]]) -> bytes | None:
    """Accuracy vs latency; marker area grows with file size. points: label, ms, accuracy, size_bytes, kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in points if p.get("ms") and p.get("accuracy") is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    smax = max(p["size_bytes"] or 1 for p in points)
    marks = {"teacher": ("s", "#444444"), "student": ("D", "#9467bd"), "artifact": ("o", "#ff7f0e")}
    # points of one model sit close together: number them and name them in a key beside the plot
    key = []
    for i, p in enumerate(sorted(points, key=lambda p: p["ms"]), 1):
        m, c = marks.get(p["kind"], ("o", "grey"))
        area = 40 + 900 * (p["size_bytes"] or 0) / smax
        ax.scatter(p["ms"], 100 * p["accuracy"], s=area, marker=m, color=c, alpha=0.6, edgecolors="black",
                   linewidths=0.5)
        ax.annotate(str(i), (p["ms"], 100 * p["accuracy"]), fontsize=7, xytext=(0, area**0.5 / 2 + 2 + 4 * (i % 2)),
                    textcoords="offset points", ha="center")
        key.append(f"{i}  {p['label']}  {p['ms']:.3g} ms, {100 * p['accuracy']:.2f}%, "
                   f"{(p['size_bytes'] or 0) / 1024:.0f} KB")
    ax.text(1.02, 0.75, "\n".join(key), transform=ax.transAxes, fontsize=7, va="top", family="monospace")
    ax.set_xscale("log")
    ax.set_xlabel("median latency, batch 1 (ms, log scale; the key names the setting timed)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy – latency – size (marker area ∝ file size)")
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], marker=m, color=c, linestyle="", label=k) for k, (m, c) in marks.items()
                       if any(p["kind"] == k for p in points)], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    ax.margins(x=0.15, y=0.25)  # room for the labels of the extreme points
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


def tradeoff_points(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {(r["artifact"], r["setting"]): r for r in result["rows"] if r.get("counted") and r.get("summary_ms")}
    pts = []
    for a in result["artifacts"]:
        for s in TRADEOFF_SETTINGS:
            r = rows.get((a["name"], s))
            if r:
                kind = "artifact"
                if a["format"] in ("torchscript", "pt2"):
                    kind = "teacher" if "teacher" in a["name"] else "student"
                pts.append({"label": f"{a['name']} ({s})", "ms": r["summary_ms"]["median"],
                            "accuracy": a.get("accuracy"), "size_bytes": a.get("size_bytes"), "kind": kind})
                break
    return pts


def loss_curve(distillation: dict[str, Any] | None) -> bytes | None:
    """The manifest's distillation section as one panel per stage: training loss per epoch (and per optimizer
    step, averaged in buckets), the validation score on a second axis; x in epochs."""
    stages = [s for s in (distillation or {}).get("stages", []) if s.get("history")]
    if not stages:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(stages), 1, figsize=(8, 3 * len(stages)), squeeze=False)
    for ax, st in zip(axes[:, 0], stages):
        hist = st["history"]
        ends = [h["epoch"] + 1 for h in hist]  # a point at the end of its epoch, where its mean loss is known
        per = st.get("steps_per_epoch") or 0
        if per and st.get("step_loss"):
            pts = st["step_loss"]
            ax.plot([s / per for s, _ in pts], [v for _, v in pts], color="#1f77b4", alpha=0.35, linewidth=0.8,
                    label="train loss per step")
        ax.plot(ends, [h["loss"] for h in hist], marker="o", color="#1f77b4", label="train loss per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
        val = ax.twinx()
        # accuracy, agreement and cosine in percent; minus a regression's error as it is
        pct = not any(h["val"] is not None and h["val"] < 0 for h in hist)
        vals = [None if h["val"] is None else (100 * h["val"] if pct else h["val"]) for h in hist]
        val.plot(ends, vals, marker="s", color="#d62728", label="validation score")
        val.set_ylabel("validation score (%)" if pct else "validation score")
        if st.get("best_epoch", -1) >= 0:
            ax.axvline(st["best_epoch"] + 1, color="grey", linestyle=":", linewidth=1)
        lines = ax.get_legend_handles_labels()[0] + val.get_legend_handles_labels()[0]
        ax.legend(lines, [h.get_label() for h in lines], fontsize=7, loc="upper left", bbox_to_anchor=(1.13, 1.0))
        ax.set_title(f"Distillation: {st.get('name', 'student')} (dotted: best epoch)", fontsize=10)
    fig.tight_layout()
    return _png(fig)
