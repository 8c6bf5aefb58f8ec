"""What the monitor knows about the training runs: Airflow's answers turned into `Run` records.

`RunSource` is the one place that calls the client, through the TTL cache; `status_of` tells
which case the pages show (success, failed, running, no run yet, Airflow unreachable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from adclick_ops.airflow_api import AirflowClient, AirflowUnreachable, DagNotFound
from adclick_ops.config.vocabulary import METRICS
from adclick_ops.monitor.cache import TTLCache

RUNNING_STATES = frozenset({"queued", "running"})


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
    metrics: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # n_test, estimator, model_path

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
            "metrics": dict(self.metrics) or None,
            "confusion_matrix": self.confusion_matrix,
            **self.extra,
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


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _confusion(value: Any) -> list[list[int]] | None:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(
            isinstance(row, list) and len(row) == 2 and all(isinstance(c, int) and not isinstance(c, bool) for c in row) for row in value
        )
    )
    return [list(row) for row in value] if ok else None


def parse_run(raw: dict[str, Any], metrics: dict[str, Any] | None, ui_url: str, dag_id: str) -> Run:
    """One DAGRunResponse (+ the metrics XCom) as a `Run`; fields of the wrong type become None."""
    start, end = _date(raw.get("start_date")), _date(raw.get("end_date"))
    duration = _number(raw.get("duration"))
    if duration is None and start and end:
        duration = (end - start).total_seconds()
    metrics = metrics or {}
    values = {name: v for name in METRICS if (v := _number(metrics.get(name))) is not None}
    extra = {
        k: metrics[k]
        for k in ("n_test", "estimator", "model_path")
        if isinstance(metrics.get(k), (str, int)) and not isinstance(metrics.get(k), bool)
    }
    note = raw.get("note")
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
        metrics=values,
        confusion_matrix=_confusion(metrics.get("confusion_matrix")),
        extra=extra,
    )


class RunSource:
    """The runs of one DAG, read from Airflow through a cache shared by every request."""

    def __init__(self, client: AirflowClient, dag_id: str, ui_url: str, cache: TTLCache):
        self.client = client
        self.dag_id = dag_id
        self.ui_url = ui_url
        self.cache = cache

    def _fetch(self, limit: int) -> list[Run]:
        runs = []
        for raw in self.client.recent_runs(self.dag_id, limit):
            # A queued run has no task output yet; every other state may have load_model_task's.
            metrics = None if raw.get("state") == "queued" else self.client.run_metrics(self.dag_id, raw["dag_run_id"])
            runs.append(parse_run(raw, metrics, self.ui_url, self.dag_id))
        return runs

    def recent(self, limit: int) -> list[Run]:
        """Up to `limit` runs, newest first, each with its metrics when load_model_task returned them."""
        return self.cache.get(("recent", limit), lambda: self._fetch(limit))

    def status(self) -> Status:
        """The latest run and its case; never raises for anything Airflow does."""
        try:
            runs = self.recent(1)
        except DagNotFound as exc:
            return Status("no_run", reason=exc.reason)
        except AirflowUnreachable as exc:
            return Status("unreachable", reason=exc.reason)
        return status_of(runs[0] if runs else None)

    def airflow_health(self) -> tuple[bool, str | None]:
        try:
            self.cache.get(("health",), self.client.health)
        except AirflowUnreachable as exc:
            return False, exc.reason
        return True, None


def status_of(run: Run | None) -> Status:
    if run is None:
        return Status("no_run", reason="Airflow has no run of this DAG yet")
    if run.state == "success":
        return Status("success", run)
    if run.state in RUNNING_STATES:
        return Status("running", run, reason=f"the latest run is still {run.state}")
    return Status("failed", run, reason=f"the latest run ended in state {run.state}")
