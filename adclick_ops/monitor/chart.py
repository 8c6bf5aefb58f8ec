"""Geometry of the inline SVG chart of accuracy and ROC AUC over the recent runs (no JS, no CDN).

Runs are placed on a time axis (their start, else their logical date; by order when a run has
neither). Failed runs are marked along the bottom, champion changes by a vertical line. The
template draws what `metrics_chart` returns; numbers and plain strings only here, every label is
escaped there.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from adclick_ops.config.vocabulary import METRIC_LABELS
from adclick_ops.monitor.runs import Run

WIDTH, HEIGHT = 880, 280
LEFT, RIGHT, TOP, BOTTOM = 52, 24, 28, 48
SERIES = tuple((name, METRIC_LABELS[name]) for name in ("accuracy", "roc_auc"))
FAILED_STATES = frozenset({"failed", "upstream_failed"})
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
# steps of the time axis, the first that gives at most MAX_TIME_TICKS ticks is used
TIME_STEPS = (
    _MINUTE,
    5 * _MINUTE,
    10 * _MINUTE,
    15 * _MINUTE,
    30 * _MINUTE,
    _HOUR,
    2 * _HOUR,
    3 * _HOUR,
    6 * _HOUR,
    12 * _HOUR,
    _DAY,
    2 * _DAY,
    7 * _DAY,
    14 * _DAY,
    30 * _DAY,
    91 * _DAY,
    365 * _DAY,
)
MAX_TIME_TICKS = 7


def describe(run: Run) -> str:
    """What the run used and made, in one line: estimator, scalers, model version."""
    record = run.record
    if record is None:
        return ""
    parts = [record.estimator] if record.estimator else []
    parts.append("scalers: " + (", ".join(record.scalers) if record.scalers else "none"))
    if record.model_version is not None:
        parts.append(f"model v{record.model_version}")
    return " · ".join(parts)


def _stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "no date"


def _time_ticks(start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    """Round times between start and end with labels as short as the span allows."""
    span = (end - start).total_seconds()
    step = next((s for s in TIME_STEPS if span / s <= MAX_TIME_TICKS - 1), TIME_STEPS[-1] * max(1, math.ceil(span / TIME_STEPS[-1] / 6)))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = math.ceil((start - epoch).total_seconds() / step) * step
    same_day = start.date() == end.date()
    if step >= _DAY:
        fmt = "%Y-%m-%d"
    elif same_day:
        fmt = "%H:%M"
    else:
        fmt = "%m-%d %H:%M"
    ticks = []
    t = first
    while t <= (end - epoch).total_seconds() + 1e-6 and len(ticks) <= MAX_TIME_TICKS:
        when = epoch + timedelta(seconds=t)
        ticks.append((when, when.strftime(fmt)))
        t += step
    return ticks


def _champion_changes(shown: list[Run], xs: list[float]) -> list[dict[str, Any]]:
    """A mark at each run whose record names another champion than the run before it that named one."""
    champions, previous = [], None
    for x, r in zip(xs, shown, strict=True):
        champion = r.record.champion_version if r.record else None
        if champion is None:
            continue
        if previous is not None and champion != previous:
            champions.append(
                {"x": x, "label": f"v{champion}", "tooltip": f"champion v{previous} → v{champion} · {r.run_id} · {_stamp(r.when)}"}
            )
        previous = champion
    return champions


def _x_positions(times: list[datetime | None], plot_left: float, plot_w: float) -> list[float]:
    """Where each run sits across the plot: by its time when every run has one, else evenly in order."""
    timed = all(t is not None for t in times)
    start = min(times) if timed else None  # type: ignore[type-var]
    span = (max(times) - start).total_seconds() if timed else 0.0  # type: ignore[type-var, operator]

    def x_at(i: int, when: datetime | None) -> float:
        if timed and span > 0:
            return plot_left + plot_w * (when - start).total_seconds() / span  # type: ignore[operator]
        if len(times) == 1 or (timed and span == 0):
            return plot_left + plot_w / 2
        return plot_left + plot_w * i / (len(times) - 1)

    return [round(x_at(i, when), 1) for i, when in enumerate(times)]


def _x_axis(times: list[datetime | None], xs: list[float], plot_left: float, plot_w: float) -> tuple[list[dict[str, Any]], str]:
    """The time axis's ticks and label; runs in order when one has no time."""
    timed = all(t is not None for t in times)
    start = min(times) if timed else None  # type: ignore[type-var]
    end = max(times) if timed else None  # type: ignore[type-var]
    span = (end - start).total_seconds() if timed else 0.0  # type: ignore[operator]
    if timed and span > 0:
        x_ticks = [
            {"x": round(plot_left + plot_w * (when - start).total_seconds() / span, 1), "label": label}
            for when, label in _time_ticks(start, end)  # type: ignore[arg-type]
        ]
        axis_label = "run start (UTC)"
    elif timed:
        x_ticks = [{"x": round(plot_left + plot_w / 2, 1), "label": start.strftime("%Y-%m-%d %H:%M")}]  # type: ignore[union-attr]
        axis_label = "run start (UTC)"
    else:
        x_ticks = [{"x": xs[i], "label": f"#{i + 1}"} for i in range(len(times))] if len(times) <= 12 else []
        axis_label = "runs in order (some have no date)"
    return x_ticks, axis_label


def _plotted(run: Run) -> dict[str, float]:
    """The run's charted metrics that are scores, in [0, 1]; a value outside (a finite -1e308 too) is left out."""
    return {name: value for name, _ in SERIES if (value := run.metrics.get(name)) is not None and 0.0 <= value <= 1.0}


def metrics_chart(runs: list[Run]) -> dict[str, Any] | None:
    """Points, ticks, marks and polylines for the recent runs, oldest on the left; None if no run has metrics.

    `left_out` counts the charted metrics outside [0, 1], which are not drawn (the page says so)."""
    chronological = list(reversed(runs))  # the API lists newest first
    plotted = {id(r): _plotted(r) for r in chronological}
    shown = [r for r in chronological if r.state in FAILED_STATES or plotted[id(r)]]
    with_metrics = [r for r in shown if plotted[id(r)]]
    left_out = sum(1 for r in chronological for name, _ in SERIES if name in r.metrics and name not in plotted[id(r)])
    if not with_metrics:
        return None
    values = [value for r in with_metrics for value in plotted[id(r)].values()]
    # Scores crowd near 1: start the axis at the tenth below the lowest, so differences show.
    low = max(0.0, math.floor(min(values) * 10 - 1e-9) / 10)
    low = min(low, 0.9)
    high = 1.0
    plot_left, plot_right = LEFT + 8, WIDTH - RIGHT - 8  # a margin so that end points are not cut
    plot_top, plot_bottom = TOP, HEIGHT - BOTTOM
    plot_w, plot_h = plot_right - plot_left, plot_bottom - plot_top

    def y(v: float) -> float:
        return plot_top + plot_h * (high - min(max(v, low), high)) / (high - low)

    xs = _x_positions([r.when for r in shown], plot_left, plot_w)
    series = []
    for name, label in SERIES:
        points = [
            {
                "x": xs[i],
                "y": round(y(plotted[id(r)][name]), 1),
                "value": plotted[id(r)][name],
                "run_id": r.run_id,
                "tooltip": " · ".join(p for p in (f"{label} {plotted[id(r)][name]:.4f}", r.run_id, _stamp(r.when), describe(r)) if p),
            }
            for i, r in enumerate(shown)
            if name in plotted[id(r)]
        ]
        series.append({"name": name, "label": label, "points": points, "polyline": " ".join(f"{p['x']},{p['y']}" for p in points)})

    failures = [
        {
            "x": xs[i],
            "y": plot_bottom - 6,
            "run_id": r.run_id,
            "tooltip": f"failed · {r.run_id} · {_stamp(r.when)}" + (f" · {describe(r)}" if describe(r) else ""),
        }
        for i, r in enumerate(shown)
        if r.state in FAILED_STATES
    ]

    champions = _champion_changes(shown, xs)

    x_ticks, axis_label = _x_axis([r.when for r in shown], xs, plot_left, plot_w)

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
        "x_ticks": x_ticks,
        "axis_label": axis_label,
        "series": series,
        "failures": failures,
        "champions": champions,
        "runs": len(with_metrics),
        "left_out": left_out,
        "first": _stamp(shown[0].when),
        "last": _stamp(shown[-1].when),
    }
