"""The geometry of the inline SVG chart."""

from __future__ import annotations

from adclick_ops.monitor.chart import metrics_chart
from adclick_ops.monitor.runs import Run
from adclick_ops.record import TrainingRecord


def run(run_id: str, **metrics: float) -> Run:
    return Run(run_id, "success", None, None, None, None, None, None, "http://airflow/x", TrainingRecord(run_id=run_id, **metrics))


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


def timed(run_id: str, hour: int, state: str = "success", day: int = 20, **fields) -> Run:
    from datetime import UTC, datetime

    metrics = {"accuracy": 0.9, "roc_auc": 0.95} if state == "success" else {}
    when = datetime(2025, 11, day, hour, 0, tzinfo=UTC)
    record = TrainingRecord(run_id=run_id, **metrics, **fields) if metrics or fields else None
    return Run(run_id, state, None, when, when, None, None, None, "http://airflow/x", record)


def test_runs_are_placed_on_a_time_axis_with_readable_labels():
    # newest first; the gap between 08:00 and 12:00 is four times the one between 12:00 and 13:00
    chart = metrics_chart([timed("c", 13), timed("b", 12), timed("a", 8)])
    xs = [p["x"] for p in chart["series"][0]["points"]]
    assert abs((xs[1] - xs[0]) - 4 * (xs[2] - xs[1])) < 1
    labels = [t["label"] for t in chart["x_ticks"]]
    assert labels[0] == "08:00" and "12:00" in labels and labels[-1] == "13:00"
    assert chart["axis_label"] == "run start (UTC)"


def test_runs_over_several_days_show_the_date_in_their_labels():
    chart = metrics_chart([timed("b", 9, day=24), timed("a", 9, day=20)])
    labels = [t["label"] for t in chart["x_ticks"]]
    assert labels == ["2025-11-21", "2025-11-22", "2025-11-23", "2025-11-24"]


def test_failed_runs_and_champion_changes_are_marked():
    runs = [
        timed("d", 12, champion_version=2, estimator="RandomForestClassifier", scalers=["StandardScaler"], model_version=2),
        timed("c", 11, state="failed"),
        timed("b", 10, champion_version=1),
        timed("a", 9, champion_version=1),
    ]
    chart = metrics_chart(runs)
    assert [f["run_id"] for f in chart["failures"]] == ["c"]
    assert [c["label"] for c in chart["champions"]] == ["v2"]
    d = chart["series"][0]["points"][-1]
    assert d["x"] == chart["champions"][0]["x"]
    assert "RandomForestClassifier · scalers: StandardScaler · model v2" in d["tooltip"]


def test_runs_without_dates_are_placed_in_order():
    chart = metrics_chart([run("b", accuracy=0.9), run("a", accuracy=0.8)])
    assert [t["label"] for t in chart["x_ticks"]] == ["#1", "#2"]
    assert chart["axis_label"].startswith("runs in order")


def test_a_metric_outside_zero_to_one_is_left_out_and_counted():
    # -1e308 is finite, so the record reads it; the axis's lowest tick was floor(-1e308 * 10): an OverflowError
    chart = metrics_chart([run("new", accuracy=0.95, roc_auc=0.99), run("old", accuracy=-1e308, roc_auc=0.9), run("odd", accuracy=1.5)])
    points = {s["name"]: [p["run_id"] for p in s["points"]] for s in chart["series"]}
    assert points == {"accuracy": ["new"], "roc_auc": ["old", "new"]}
    assert chart["left_out"] == 2 and chart["runs"] == 2
    assert chart["ticks"][0]["label"] == "0.80" and chart["ticks"][-1]["label"] == "1.00"
    assert metrics_chart([run("a", accuracy=-1e308)]) is None  # nothing to draw
