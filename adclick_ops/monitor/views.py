"""The monitor's routes: HTML pages for people, JSON for scripts. None of them changes anything."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from adclick_ops.airflow_api import AirflowUnreachable, DagNotFound
from adclick_ops.config.vocabulary import METRIC_LABELS, METRICS
from adclick_ops.monitor.chart import metrics_chart
from adclick_ops.monitor.runs import RunSource, Status

bp = Blueprint("monitor", __name__)

# /health names the service, so that start_Flask_API can tell our monitor from another program.
SERVICE_NAME = "adclick-monitor"

MAX_RUNS_LIMIT = 100
CASE_TITLES = {
    "success": "Latest run succeeded",
    "failed": "Latest run failed",
    "running": "Latest run is still running",
    "no_run": "No run yet",
    "unreachable": "Airflow is unreachable",
}


def _source() -> RunSource:
    return current_app.extensions["adclick_monitor"]


@bp.app_template_filter("when")
def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if value else "—"


@bp.app_template_filter("seconds")
def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{value:.1f} s"


@bp.get("/")
def index() -> Any:
    target = "monitor.success" if _source().status().succeeded else "monitor.failure"
    return redirect(url_for(target))


def _page(status: Status) -> str:
    source = _source()
    recent, chart_note = [], None
    if status.case != "unreachable":
        try:
            recent = source.recent(current_app.config["CHART_RUNS"])
        except (AirflowUnreachable, DagNotFound) as exc:
            chart_note = exc.reason
    return render_template(
        "run.html",
        status=status,
        run=status.run,
        title=CASE_TITLES[status.case],
        recent=recent,
        chart=metrics_chart(recent),
        chart_note=chart_note,
        metric_names=METRICS,
        metric_labels=METRIC_LABELS,
        dag_id=source.dag_id,
        airflow_url=source.ui_url,
        refresh=status.case in ("running", "unreachable"),
    )


@bp.get("/success")
def success() -> Any:
    status = _source().status()
    if not status.succeeded:
        return redirect(url_for("monitor.failure"))
    return _page(status)


@bp.get("/failure")
def failure() -> Any:
    status = _source().status()
    if status.succeeded:
        return redirect(url_for("monitor.success"))
    return _page(status), 503 if status.case == "unreachable" else 200


@bp.get("/health")
def health() -> Any:
    source = _source()
    reachable, reason = source.airflow_health()
    airflow = {"url": source.client.base_url, "reachable": reachable}
    if reason:
        airflow["reason"] = reason
    return jsonify({"status": "ok", "service": SERVICE_NAME, "dag_id": source.dag_id, "airflow": airflow})


@bp.get("/api/status")
def api_status() -> Any:
    source = _source()
    status = source.status()
    body = {
        "dag_id": source.dag_id,
        "case": status.case,
        "reason": status.reason,
        "run": status.run.as_json() if status.run else None,
    }
    return jsonify(body), 503 if status.case == "unreachable" else 200


@bp.get("/api/runs")
def api_runs() -> Any:
    source = _source()
    raw = request.args.get("limit", "10")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUNS_LIMIT:
        return jsonify({"error": f"limit must be an integer from 1 to {MAX_RUNS_LIMIT}", "status": 400}), 400
    try:
        runs = source.recent(int(raw))
    except DagNotFound as exc:
        return jsonify({"dag_id": source.dag_id, "runs": [], "reason": exc.reason})
    except AirflowUnreachable as exc:
        return jsonify({"dag_id": source.dag_id, "error": "airflow unreachable", "reason": exc.reason}), 503
    return jsonify({"dag_id": source.dag_id, "runs": [run.as_json() for run in runs]})
