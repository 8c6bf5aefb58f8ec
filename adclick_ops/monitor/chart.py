"""Geometry of the inline SVG chart of accuracy and ROC AUC over the recent runs (no JS, no CDN).

The template draws what `metrics_chart` returns; numbers only here, every label is escaped there.
"""

from __future__ import annotations

import math
from typing import Any

from adclick_ops.config.vocabulary import METRIC_LABELS
from adclick_ops.monitor.runs import Run

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 32
SERIES = tuple((name, METRIC_LABELS[name]) for name in ("accuracy", "roc_auc"))


def metrics_chart(runs: list[Run]) -> dict[str, Any] | None:
    """Points, ticks and polylines for the runs that have metrics, oldest on the left; None if none."""
    plotted = [r for r in reversed(runs) if any(name in r.metrics for name, _ in SERIES)]
    if not plotted:
        return None
    values = [r.metrics[name] for r in plotted for name, _ in SERIES if name in r.metrics]
    # Scores crowd near 1: start the axis at the tenth below the lowest, so differences show.
    low = max(0.0, math.floor(min(values) * 10 - 1e-9) / 10)
    low = min(low, 0.9)
    high = 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if len(plotted) == 1 else plot_w * i / (len(plotted) - 1))

    def y(v: float) -> float:
        return TOP + plot_h * (high - min(max(v, low), high)) / (high - low)

    series = []
    for name, label in SERIES:
        points = [
            {"x": round(x(i), 1), "y": round(y(r.metrics[name]), 1), "value": r.metrics[name], "run_id": r.run_id}
            for i, r in enumerate(plotted)
            if name in r.metrics
        ]
        series.append({"name": name, "label": label, "points": points, "polyline": " ".join(f"{p['x']},{p['y']}" for p in points)})
    step = 0.02 if high - low <= 0.2 + 1e-9 else 0.1
    ticks = [{"label": f"{low + k * step:.2f}", "y": round(y(low + k * step), 1)} for k in range(round((high - low) / step) + 1)]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "ticks": ticks,
        "series": series,
        "runs": len(plotted),
    }
