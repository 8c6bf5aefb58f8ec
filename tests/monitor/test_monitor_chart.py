"""The geometry of the inline SVG chart."""

from __future__ import annotations

from adclick_ops.monitor.chart import metrics_chart
from adclick_ops.monitor.runs import Run


def run(run_id: str, **metrics: float) -> Run:
    return Run(run_id, "success", None, None, None, None, None, None, "http://airflow/x", metrics)


def test_no_chart_without_metrics():
    assert metrics_chart([]) is None
    assert metrics_chart([run("a")]) is None


def test_oldest_run_on_the_left_and_higher_scores_higher():
    # Runs come newest first, as the API lists them.
    chart = metrics_chart([run("new", accuracy=0.95, roc_auc=0.99), run("old", accuracy=0.85, roc_auc=0.9)])
    accuracy = next(s for s in chart["series"] if s["name"] == "accuracy")
    old, new = accuracy["points"]
    assert (old["run_id"], new["run_id"]) == ("old", "new")
    assert old["x"] < new["x"]
    assert new["y"] < old["y"]  # SVG y grows downwards
    assert accuracy["polyline"] == f"{old['x']},{old['y']} {new['x']},{new['y']}"
    assert chart["ticks"][0]["label"] == "0.80" and chart["ticks"][-1]["label"] == "1.00"


def test_a_run_without_one_metric_is_left_out_of_that_series_only():
    chart = metrics_chart([run("a", accuracy=0.9), run("b", accuracy=0.8, roc_auc=0.85)])
    counts = {s["name"]: len(s["points"]) for s in chart["series"]}
    assert counts == {"accuracy": 2, "roc_auc": 1}
