"""What the monitor knows about the training runs: Airflow's answers turned into `Run` records.

`RunSource` is the one place that calls the client, through the TTL cache; `status_of` tells
which case the pages show (success, failed, running, no run yet, Airflow unreachable). For the
latest run it also reads the task instances: which task failed, on which try and why (the
`failure` XCom that a failing task pushes), or which tasks are running.

Whatever Airflow answers is checked here: values of the wrong type become None, dates are read
leniently (naive ones as UTC), lists are cut to what was asked for. The training record is parsed
whole (record.TrainingRecord.parse), or said to be unreadable, and why.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from adclick_ops.airflow_api import FAILURE_XCOM_KEY, AirflowClient, AirflowError, AirflowUnreachable, DagNotFound
from adclick_ops.config.vocabulary import METRICS
from adclick_ops.monitor.cache import AirflowSlow, FreshCheck, TTLCache
from adclick_ops.monitor.pipelines import PipelineState, read_state
from adclick_ops.record import RecordUnreadable, TrainingRecord

log = logging.getLogger(__name__)

RUNNING_STATES = frozenset({"queued", "running"})
# task instance states that mean "not finished yet" in a running run
ACTIVE_TASK_STATES = ("running", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "deferred", "restarting")
FAILURE_KINDS = frozenset({"data", "gate", "config", "transient", "error"})
MAX_ERROR_CHARS = 500
MAX_TEXT_CHARS = 200  # task ids shown
_EXCEPTION_PREFIX = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Failure): ")
FETCH_BUDGET = 10.0  # seconds one refresh may spend reading metrics XComs before it stops asking


@dataclass(frozen=True)
class TaskTry:
    """One task instance of a run as the pages show it: a failed one (with why) or a running one."""

    task_id: str
    state: str
    try_number: int | None
    max_tries: int | None
    log_link: str
    error: str | None = None
    kind: str | None = None  # data | gate | config | transient | error; None: no failure record
    retryable: bool | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "state": self.state,
            "try_number": self.try_number,
            "max_tries": self.max_tries,
            "error": self.error,
            "kind": self.kind,
            "retryable": self.retryable,
            "log_link": self.log_link,
        }


@dataclass(frozen=True)
class Run:
    run_id: str
    state: str
    run_type: str | None
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    note: str | None
    airflow_link: str
    record: TrainingRecord | None = None  # what load_model_task returned, parsed (record.TrainingRecord.parse)
    record_error: str | None = None  # "record unreadable: <field>: <what>" when its value is not a TrainingRecord
    failure: TaskTry | None = None  # the failed task of a failed run (the latest run only)
    running_tasks: tuple[TaskTry, ...] = ()  # the unfinished tasks of a running run (the latest run only)
    details_note: str | None = None  # why the task details are missing, when Airflow did not give them

    @property
    def when(self) -> datetime | None:
        """The time the run is placed at: its start, else its logical date."""
        return self.start_date or self.logical_date

    @property
    def gate_rejected(self) -> bool:
        return self.failure is not None and self.failure.kind == "gate"

    @property
    def confusion(self) -> list[list[int]] | None:
        """The record's confusion matrix when it is two by two (actual 0/1 by predicted 0/1), the only shape the pages draw."""
        cm = self.record.confusion_matrix if self.record is not None else None
        return cm if cm is not None and len(cm) == 2 and all(len(row) == 2 for row in cm) else None

    @property
    def metrics(self) -> dict[str, float]:
        """The record's test metrics that are defined, by name (METRICS)."""
        if self.record is None:
            return {}
        return {name: value for name in METRICS if (value := getattr(self.record, name)) is not None}

    def _record_json(self) -> dict[str, Any]:
        r = self.record
        if r is None:
            return {}
        fields = {
            "n_test": r.n_test,
            "estimator": r.estimator,
            "scalers": list(r.scalers),
            "model_version": r.model_version,
            "promoted": r.promoted,
            "decision_kind": r.decision_kind,
            "decision": r.decision,
            "previous_champion_version": r.previous_champion_version,
            "champion_version": r.champion_version,
            "previous_champion_metrics": r.previous_champion_metrics,
            "model_path": r.model_path,
        }
        return {key: value for key, value in fields.items() if value is not None}

    def as_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "run_id": self.run_id,
            "state": self.state,
            "run_type": self.run_type,
            "logical_date": iso(self.logical_date),
            "start_date": iso(self.start_date),
            "end_date": iso(self.end_date),
            "duration_seconds": self.duration,
            "note": self.note,
            "airflow_link": self.airflow_link,
            "metrics": self.metrics or None,
            "confusion_matrix": self.record.confusion_matrix if self.record else None,
            **self._record_json(),
            "record_error": self.record_error,
            "failure": self.failure.as_json() if self.failure else None,
            "running_tasks": [t.as_json() for t in self.running_tasks],
            "details_note": self.details_note,
        }


@dataclass(frozen=True)
class Status:
    """The latest run and the case the pages show for it."""

    case: str  # success | failed | running | no_run | unreachable
    run: Run | None = None
    reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.case == "success"

    @property
    def record_error(self) -> str | None:
        """Why the latest run's record cannot be read; the routes that show it answer 503 with this."""
        return self.run.record_error if self.run is not None else None


def _date(value: Any) -> datetime | None:
    """An ISO 8601 date as an aware UTC datetime: `Z`, offsets and naive (taken as UTC) alike; else None."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. year 1 with a positive offset
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and -(2**53) < value < 2**53 else None


def _text(value: Any, limit: int = MAX_TEXT_CHARS) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _first_line(value: Any) -> str | None:
    text = _text(value, MAX_ERROR_CHARS * 4)
    return _text(text.splitlines()[0], MAX_ERROR_CHARS) if text else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def parse_run(raw: dict[str, Any], value: Any, ui_url: str, dag_id: str) -> Run:
    """One DAGRunResponse (+ load_model_task's XCom, `value`) as a `Run`; fields of the wrong type become None.

    The XCom is read by TrainingRecord.parse, the one reader of the record: a value that is not a record
    leaves `record` None and says why in `record_error`.
    """
    start, end = _date(raw.get("start_date")), _date(raw.get("end_date"))
    duration = _number(raw.get("duration"))
    if duration is None and start and end:
        duration = (end - start).total_seconds()
    try:
        record, record_error = TrainingRecord.parse(value), None
    except RecordUnreadable as exc:
        record, record_error = None, str(exc)
    note = raw.get("note")
    if duration is not None and duration < 0:
        duration = None
    return Run(
        run_id=raw["dag_run_id"],
        state=str(raw.get("state") or "unknown"),
        run_type=raw.get("run_type") if isinstance(raw.get("run_type"), str) else None,
        logical_date=_date(raw.get("logical_date")),
        start_date=start,
        end_date=end,
        duration=duration,
        note=note if isinstance(note, str) else None,
        airflow_link=f"{ui_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(raw['dag_run_id'], safe='')}",
        record=record,
        record_error=record_error,
    )


def log_link(ui_url: str, dag_id: str, run_id: str, task_id: str, try_number: int | None) -> str:
    """The Airflow UI page of one try of a task (its log)."""
    link = f"{ui_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return f"{link}?try_number={try_number}" if try_number is not None and try_number > 0 else link


def _when_ended(ti: dict[str, Any]) -> datetime:
    return _date(ti.get("end_date")) or _date(ti.get("start_date")) or datetime.max.replace(tzinfo=UTC)


def failed_task(tis: list[dict[str, Any]], record: Any, ui_url: str, dag_id: str, run_id: str) -> TaskTry | None:
    """The failed task of a run: the first that failed, with its `failure` record when it has a valid one."""
    failed = sorted((ti for ti in tis if ti.get("state") == "failed"), key=_when_ended)
    if not failed:
        return None
    ti = failed[0]
    task_id = _text(ti["task_id"], 250) or "?"
    try_number, max_tries = _int(ti.get("try_number")), _int(ti.get("max_tries"))
    error = kind = retryable = None
    if isinstance(record, dict) and record.get("task_id") in (None, ti["task_id"]):
        error = _first_line(record.get("error"))
        # a kind of another type (a list, an object) is unreadable, as an unknown name is: `in` would hash it
        kind = record.get("kind") if isinstance(record.get("kind"), str) and record.get("kind") in FAILURE_KINDS else None
        retryable = record.get("retryable") if isinstance(record.get("retryable"), bool) else None
        try_number = _int(record.get("try_number")) or try_number
        max_tries = _int(record.get("max_tries")) or max_tries
    return TaskTry(
        task_id=task_id,
        state="failed",
        try_number=try_number,
        max_tries=max_tries,
        log_link=log_link(ui_url, dag_id, run_id, ti["task_id"], try_number),
        error=error,
        kind=kind if error else None,
        retryable=retryable,
    )


def running_tasks(tis: list[dict[str, Any]], ui_url: str, dag_id: str, run_id: str) -> tuple[TaskTry, ...]:
    active = [ti for ti in tis if ti.get("state") in ACTIVE_TASK_STATES]
    active.sort(key=lambda ti: (ACTIVE_TASK_STATES.index(ti["state"]), ti["task_id"]))
    return tuple(
        TaskTry(
            task_id=_text(ti["task_id"], 250) or "?",
            state=ti["state"],
            try_number=_int(ti.get("try_number")),
            max_tries=_int(ti.get("max_tries")),
            log_link=log_link(ui_url, dag_id, run_id, ti["task_id"], _int(ti.get("try_number"))),
        )
        for ti in active[:20]
    )


class RunSource:
    """The runs of one DAG, read from Airflow through a cache shared by every request."""

    def __init__(self, client: AirflowClient, dag_id: str, ui_url: str, cache: TTLCache, *, health_wait: float = 0.5):
        self.client = client
        self.dag_id = dag_id
        self.ui_url = ui_url
        self.cache = cache
        # never cached: /health says what Airflow's health endpoint answered during that request
        self._health = FreshCheck(client.health, health_wait)

    def _fetch(self, limit: int) -> list[Run]:
        runs = []
        stop_at = time.monotonic() + FETCH_BUDGET
        # recent_runs keeps at most `limit`, whatever Airflow listed: one XCom read per run at most.
        for raw in self.client.recent_runs(self.dag_id, limit)[:limit]:
            # A queued run has no task output yet; every other state may have load_model_task's.
            metrics = None
            if raw.get("state") != "queued" and time.monotonic() < stop_at:
                metrics = self.client.run_metrics(self.dag_id, raw["dag_run_id"])
            runs.append(parse_run(raw, metrics, self.ui_url, self.dag_id))
        return runs

    def _fetch_latest(self) -> Run | None:
        runs = self._fetch(1)
        return self._with_tasks(runs[0]) if runs else None

    def _with_tasks(self, run: Run) -> Run:
        """The run with its failed task (and why) or its running tasks, as far as Airflow tells."""
        if run.state == "success":
            return run
        try:
            tis = self.client.task_instances(self.dag_id, run.run_id)
            if run.state in RUNNING_STATES:
                return replace(run, running_tasks=running_tasks(tis, self.ui_url, self.dag_id, run.run_id))
            failed = failed_task(tis, None, self.ui_url, self.dag_id, run.run_id)
            if failed is None:
                return run
            record = self.client.xcom(self.dag_id, run.run_id, failed.task_id, FAILURE_XCOM_KEY)
            return replace(run, failure=failed_task(tis, record, self.ui_url, self.dag_id, run.run_id))
        except AirflowError as exc:
            return replace(run, details_note=f"the task details could not be read: {exc.reason}")

    def recent(self, limit: int) -> list[Run]:
        """Up to `limit` runs, newest first, each with its metrics when load_model_task returned them."""
        return self.cache.get(("recent", limit), lambda: self._fetch(limit))

    def status(self) -> Status:
        """The latest run and its case; never raises for anything Airflow does."""
        try:
            run = self.cache.get(("latest",), self._fetch_latest)
        except DagNotFound as exc:
            return Status("no_run", reason=exc.reason)
        except AirflowUnreachable as exc:
            return Status("unreachable", reason=exc.reason)
        return status_of(run)

    def pipelines(self, wait: float | None = None) -> PipelineState | None:
        """The pipeline files' and the DAG's state (monitor.pipelines); None when Airflow did not tell within `wait` s."""
        try:
            return self.cache.get(("pipelines",), lambda: read_state(self.client, self.dag_id), wait=wait)
        except AirflowError:
            return None

    def airflow_health(self) -> tuple[bool | None, str | None]:
        """Whether Airflow's health endpoint answers now (asked during this call, never a remembered answer);
        None when it has not answered within `health_wait` s (or what is left of the request's budget)."""
        try:
            self._health.ask()
        except AirflowUnreachable as exc:
            return (None if isinstance(exc, AirflowSlow) else False), exc.reason
        return True, None


def status_of(run: Run | None) -> Status:
    if run is None:
        return Status("no_run", reason="Airflow has no run of this DAG yet")
    if run.state == "success":
        return Status("success", run)
    if run.state in RUNNING_STATES:
        doing = ", ".join(
            f"{t.task_id} ({t.state}, try {t.try_number})" if t.try_number else f"{t.task_id} ({t.state})" for t in run.running_tasks
        )
        return Status("running", run, reason=f"the latest run is still {run.state}" + (f": {doing}" if doing else ""))
    failure = run.failure
    if failure is None:
        return Status("failed", run, reason=f"the latest run ended in state {run.state}")
    if failure.kind == "gate" and failure.error:
        # "QualityGateError: model v7 not promoted: ..." reads as the outcome it is
        return Status("failed", run, reason=_EXCEPTION_PREFIX.sub("", failure.error, count=1))
    try_text = f" on try {failure.try_number}" if failure.try_number else ""
    why = failure.error or "no error was recorded (killed, or failed before it could say why); see its log"
    return Status("failed", run, reason=f"{failure.task_id} failed{try_text}: {why}")
