"""The monitor's routes: HTML pages for people, JSON for scripts. None of them changes anything."""

from __future__ import annotations

import contextlib
import functools
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, redirect, render_template, request
from markupsafe import Markup

from adclick_ops.airflow_api import AirflowUnreachable, DagNotFound
from adclick_ops.config.vocabulary import METRIC_LABELS, METRICS
from adclick_ops.monitor.cache import end_budget, start_budget
from adclick_ops.monitor.chart import describe, metrics_chart
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
# The page of each case. Redirects carry these relative paths only: never a host from the request.
CASE_PAGES = {"success": "/success", "running": "/running", "failed": "/failure", "no_run": "/failure", "unreachable": "/failure"}
_DIGITS = re.compile(r"[0-9]{1,6}")  # ASCII digits only: str.isdigit() also takes "٣" and "²"


class QueryError(ValueError):
    """A malformed query value: answered with 400 and this message."""


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """The query value `name` as an integer in [low, high]; QueryError names what was found and expected."""
    values = request.args.getlist(name)
    expected = f"{name} must be an integer from {low} to {high}"
    if not values:
        return default
    if len(values) > 1:
        raise QueryError(f"{expected}; it was given {len(values)} times")
    raw = values[0]
    shown = raw if len(raw) <= 20 else raw[:20] + "…"
    if not _DIGITS.fullmatch(raw):
        raise QueryError(f"{expected}, got {shown!r}" if raw else f"{expected}, got an empty value")
    value = int(raw)
    if not low <= value <= high:
        raise QueryError(f"{expected}, got {value}")
    return value


@bp.app_errorhandler(QueryError)
def _query_error(exc: QueryError) -> Any:
    return jsonify({"error": str(exc), "status": 400}), 400


def _to_page(status: Status) -> Response:
    return redirect(CASE_PAGES[status.case], code=302)


def _source() -> RunSource:
    return current_app.extensions["adclick_monitor"]


@bp.app_template_filter("when")
def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if value else "—"


@bp.app_template_filter("breakable")
def _breakable(value: str) -> Markup:
    """A run id that may break after each "__" (manual__<date>__<suffix>), and nowhere else (not at its dashes)."""
    parts = str(value).split("__")
    return Markup("<wbr>").join(
        Markup('<span class="nobr">{}</span>').format(part + ("__" if i < len(parts) - 1 else "")) for i, part in enumerate(parts)
    )


@bp.app_template_filter("seconds")
def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{value:.1f} s"


@bp.app_template_filter("describe")
def _describe(run: Any) -> str:
    return describe(run)


@bp.before_app_request
def _start_budget() -> None:
    """All the waits of one request on Airflow together: AIRFLOW_WAIT for a page, HEALTH_WAIT for /health
    (its health endpoint, then the pipelines' state)."""
    g.adclick_wait_budget = start_budget(current_app.config["HEALTH_WAIT" if request.endpoint == "monitor.health" else "AIRFLOW_WAIT"])


@bp.teardown_app_request
def _end_budget(_exc: BaseException | None) -> None:
    token = g.pop("adclick_wait_budget", None)
    if token is not None:
        with contextlib.suppress(ValueError):  # set in another context (a server that switched it): it ends with it
            end_budget(token)


@bp.app_context_processor
def _pipeline_state() -> dict[str, Any]:
    """Every page shows the banner of broken pipeline files and of a DAG Airflow lost (templates/_pipelines.html)."""
    if "adclick_monitor" not in current_app.extensions:
        return {"pipelines": None}
    return {"pipelines": _source().pipelines()}


@bp.get("/")
def index() -> Any:
    return _to_page(_source().status())


@functools.cache
def _favicon() -> bytes:
    return (Path(__file__).parent / "static" / "favicon.ico").read_bytes()


@bp.get("/favicon.ico")
def favicon() -> Any:
    response = Response(_favicon(), mimetype="image/vnd.microsoft.icon")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


NO_RUN_REASON = "Airflow has no run of this DAG yet"
_GATE_HEADLINE = re.compile(r"^model v[0-9]+ not promoted: ")


def _banner(status: Status, dag_id: str) -> str | Markup | None:
    """The banner's sentence under its title: what the title does not say already."""
    run = status.run
    if status.case == "failed" and run is not None and run.gate_rejected:
        version = run.record.model_version if run.record else None
        kept = f"version {version} was kept" if version is not None else "the new version was kept"
        champion = run.record.champion_version if run.record else None
        unchanged = f"the champion, version {champion}, is unchanged" if champion is not None else "the champion is unchanged"
        return f"{_GATE_HEADLINE.sub('', status.reason or '', count=1)}: {kept}; {unchanged}."
    if status.case == "failed":
        f = run.failure if run is not None else None
        if f is None:
            return "No task recorded why; the task logs are in the Airflow UI."
        at = f"{f.task_id}, try {f.try_number}" if f.try_number else f.task_id
        return f"{at}: {f.error or 'no error was recorded (killed, or stopped before it could say why); see its log'}."
    if status.case == "running":
        return "This page refreshes every 15 s."
    if status.case == "no_run":
        start = Markup("Start one with <code>adclick-ops trigger --wait</code>, in the Airflow UI, or wait for the schedule of {}.").format(
            dag_id
        )
        return start if status.reason == NO_RUN_REASON else Markup("{}. ").format(status.reason) + start
    if status.case == "unreachable":
        return f"The monitor could not read the runs from Airflow: {status.reason}. This page refreshes every 15 s."
    return None


def _page(status: Status, nothing: dict[str, str] | None = None) -> str:
    """The page of the latest run; `nothing`: this page has nothing to show in that case, and says so."""
    source = _source()
    recent, chart_note = [], None
    if status.case != "unreachable":
        try:
            recent = source.recent(current_app.config["CHART_RUNS"])
        except (AirflowUnreachable, DagNotFound) as exc:
            chart_note = exc.reason
    title = CASE_TITLES[status.case]
    if status.run is not None and status.run.gate_rejected:
        title = "Latest run: model not promoted"
    elif status.case == "success" and status.run is not None and status.run.record is not None and not status.run.record.promoted:
        title = "Latest run succeeded — model not promoted"
    if nothing is not None:
        title = nothing["title"]
    # Never "succeeded" alone while the DAG is broken, stale or gone: the tab's title names the problem, and the
    # page's heading points at the banner above it, which says it in full (said once on the page).
    heading = title
    state = source.pipelines()
    if state is not None and state.degraded:
        title += f", but {state.problems[0]}"
        heading += ", but see the pipeline problem above"
    return render_template(
        "run.html",
        status=status,
        run=status.run if nothing is None else None,
        latest=status.run,
        nothing=nothing,
        banner=_banner(status, source.dag_id),
        title=title,
        heading=heading,
        recent=recent,
        chart=metrics_chart(recent),
        chart_note=chart_note,
        metric_names=METRICS,
        metric_labels=METRIC_LABELS,
        dag_id=source.dag_id,
        airflow_url=source.ui_url,
        refresh=status.case in ("running", "unreachable") or (nothing is not None and nothing["page"] == "running"),
    )


def _code(status: Status) -> int:
    """The HTTP status of a page or document that shows the latest run: 503 when Airflow is unreachable or
    the run's record cannot be read (the page says which field and why)."""
    return 503 if status.case == "unreachable" or status.record_error else 200


@bp.get("/success")
def success() -> Any:
    status = _source().status()
    if not status.succeeded:
        return _to_page(status)
    return _page(status), _code(status)


# What the latest run did, as the pages with nothing to show say it.
_LATEST_DID = {"success": "succeeded", "failed": "failed", "running": "is still running", "no_run": "", "unreachable": ""}


@bp.get("/running")
def running() -> Any:
    status = _source().status()
    if status.case in ("running", "unreachable"):
        return _page(status), _code(status)
    # nothing runs: said here, with a link to the latest run's page, rather than a silent redirect
    return _page(
        status, {"page": "running", "title": "No run is running", "did": _LATEST_DID[status.case], "link": CASE_PAGES[status.case]}
    )


@bp.get("/failure")
def failure() -> Any:
    status = _source().status()
    if status.case in ("success", "running"):
        return _page(
            status,
            {"page": "failure", "title": "The latest run has not failed", "did": _LATEST_DID[status.case], "link": CASE_PAGES[status.case]},
        )
    return _page(status), _code(status)


@bp.get("/health")
def health() -> Any:
    # Never waits on Airflow for more than HEALTH_WAIT (half a second) in all: a slow Airflow shows as "reachable": null.
    # "reachable" is what Airflow's health endpoint answered during this request, never an older answer.
    source = _source()
    reachable, reason = source.airflow_health()
    airflow = {"url": source.client.base_url, "reachable": reachable}
    if reason:
        airflow["reason"] = reason
    body: dict[str, Any] = {"status": "ok", "service": SERVICE_NAME, "dag_id": source.dag_id, "airflow": airflow}
    # liveness stays HTTP 200; a broken pipeline file or a DAG Airflow lost makes it "degraded"
    state = source.pipelines() if reachable else None  # within what is left of HEALTH_WAIT
    if state is not None and state.degraded:
        body.update(status="degraded", problems=list(state.problems))
    return jsonify(body)


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
    if status.record_error:
        body["error"] = status.record_error
    state = source.pipelines() if status.case != "unreachable" else None
    body["pipelines"] = state.as_json() if state is not None else None
    return jsonify(body), _code(status)


@bp.get("/api/runs")
def api_runs() -> Any:
    source = _source()
    limit = int_arg("limit", 10, 1, MAX_RUNS_LIMIT)
    try:
        runs = source.recent(limit)
    except DagNotFound as exc:
        return jsonify({"dag_id": source.dag_id, "runs": [], "reason": exc.reason})
    except AirflowUnreachable as exc:
        return jsonify({"dag_id": source.dag_id, "error": "airflow unreachable", "reason": exc.reason}), 503
    return jsonify({"dag_id": source.dag_id, "runs": [run.as_json() for run in runs]})
