"""A real HTTP server on loopback that answers like Airflow 3.1's api-server for what the monitor reads.

The JSON shapes follow airflow/api_fastapi (LoginResponse, DAGRunCollectionResponse,
XComResponseNative, HealthInfoResponse) and the same status codes (201 token, 401 without a valid
bearer token, 404 for an unknown DAG or XCom). Used by the monitor tests and by the benchmark.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:  # one line per call would flood the test output
        pass


T0 = datetime(2025, 11, 20, 8, 0, tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def dag_run(
    run_id: str, state: str, *, started: datetime = T0, minutes: float | None = 3.0, note: str | None = None, dag_id: str = "Airflow_Lab2"
) -> dict[str, Any]:
    """A DAGRunResponse as GET /api/v2/dags/{dag_id}/dagRuns lists it; minutes=None: not ended."""
    ended = started + timedelta(minutes=minutes) if minutes is not None else None
    return {
        "dag_run_id": run_id,
        "dag_id": dag_id,
        "logical_date": iso(started),
        "queued_at": iso(started - timedelta(seconds=2)),
        "start_date": iso(started) if state != "queued" else None,
        "end_date": iso(ended),
        "duration": (ended - started).total_seconds() if ended else None,
        "data_interval_start": iso(started),
        "data_interval_end": iso(started),
        "run_after": iso(started),
        "last_scheduling_decision": iso(ended or started),
        "run_type": "manual",
        "state": state,
        "triggered_by": "rest_api",
        "triggering_user_name": "airflow",
        "conf": {},
        "note": note,
        "dag_versions": [],
        "bundle_version": None,
        "dag_display_name": dag_id,
    }


def metrics(run_id: str, accuracy: float = 0.9612, roc_auc: float = 0.9874) -> dict[str, Any]:
    """What load_model_task returns (adclick_ops.tasks.load_model)."""
    return {
        "accuracy": accuracy,
        "precision": 0.9701,
        "recall": 0.9503,
        "f1": 0.9601,
        "roc_auc": roc_auc,
        "confusion_matrix": [[97, 3], [5, 95]],
        "n_test": 200,
        "model_path": "/opt/airflow/model/model.sav",
        "estimator": "logistic_regression",
        "run_id": run_id,
    }


class AirflowStub:
    """Set `runs` (DAGRunResponse dicts), `xcoms` (run_id -> value) and `dag_ids`; read `calls`."""

    def __init__(self, username: str = "airflow", password: str = "airflow"):
        self._default_credentials = {"username": username, "password": password}
        self.credentials = dict(self._default_credentials)
        self.runs: list[dict[str, Any]] = []
        self.xcoms: dict[str, Any] = {}
        self.dag_ids = {"Airflow_Lab2"}
        self.fail_status: int | None = None  # answer every /api/v2 call with this status
        self.calls: Counter[str] = Counter()
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None
        self._routes = Map(
            [
                Rule("/auth/token", endpoint="token", methods=["POST"]),
                Rule("/api/v2/monitor/health", endpoint="health", methods=["GET"]),
                Rule("/api/v2/dags/<dag_id>/dagRuns", endpoint="runs", methods=["GET"]),
                Rule(
                    "/api/v2/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/xcomEntries/<path:key>",
                    endpoint="xcom",
                    methods=["GET"],
                ),
            ]
        )

    # -- control -------------------------------------------------------------------------------
    def reset(self) -> None:
        self.runs, self.xcoms, self.dag_ids, self.fail_status = [], {}, {"Airflow_Lab2"}, None
        self.credentials = dict(self._default_credentials)
        self.calls.clear()
        self.revoke_tokens()

    def revoke_tokens(self) -> None:
        """As after an api-server restart with a new secret: issued tokens now get 401."""
        with self._lock:
            self._tokens.clear()

    def start(self) -> AirflowStub:
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_QuietHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    # -- HTTP ----------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            endpoint, args = self._routes.bind_to_environ(environ).match()
            with self._lock:
                self.calls[endpoint] += 1
            response = getattr(self, f"_{endpoint}")(request, **args)
        except NotFound:
            response = self._json({"detail": "Not Found"}, 404)
        except HTTPException as exc:
            response = self._json({"detail": exc.description}, exc.code or 500)
        return response(environ, start_response)

    @staticmethod
    def _json(body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        with self._lock:
            return header.startswith("Bearer ") and header[7:] in self._tokens

    def _token(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        if body.get("username") != self.credentials["username"] or body.get("password") != self.credentials["password"]:
            return self._json({"detail": "Invalid credentials"}, 401)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return self._json({"access_token": token}, 201)

    def _health(self, request: Request) -> Response:
        if self.fail_status:
            return self._json({"detail": "Internal Server Error"}, self.fail_status)
        return self._json(
            {
                "metadatabase": {"status": "healthy"},
                "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": iso(T0)},
                "triggerer": {"status": None, "latest_triggerer_heartbeat": None},
                "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": iso(T0)},
            }
        )

    def _guard(self, request: Request, dag_id: str) -> Response | None:
        if not self._authorized(request):
            return self._json({"detail": "Not authenticated"}, 401)
        if self.fail_status:
            return self._json({"detail": "Internal Server Error"}, self.fail_status)
        if dag_id not in self.dag_ids:
            return self._json({"detail": f"The Dag with ID: `{dag_id}` was not found"}, 404)
        return None

    def _runs(self, request: Request, dag_id: str) -> Response:
        refused = self._guard(request, dag_id)
        if refused:
            return refused
        runs = [r for r in self.runs if r["dag_id"] == dag_id]
        for key in reversed(request.args.getlist("order_by") or ["id"]):
            field = {"id": "run_after", "dag_run_id": "dag_run_id"}.get(key.lstrip("-"), key.lstrip("-"))
            runs.sort(key=lambda r: r.get(field) or "", reverse=key.startswith("-"))
        limit = int(request.args.get("limit", 50))
        offset = int(request.args.get("offset", 0))
        return self._json({"dag_runs": runs[offset : offset + limit], "total_entries": len(runs)})

    def _xcom(self, request: Request, dag_id: str, run_id: str, task_id: str, key: str) -> Response:
        refused = self._guard(request, dag_id)
        if refused:
            return refused
        run = next((r for r in self.runs if r["dag_run_id"] == run_id and r["dag_id"] == dag_id), None)
        if run is None or task_id != "load_model_task" or key != "return_value" or run_id not in self.xcoms:
            return self._json({"detail": f"XCom entry with key: `{key}` not found"}, 404)
        return self._json(
            {
                "key": key,
                "timestamp": run["end_date"] or run["start_date"],
                "logical_date": run["logical_date"],
                "map_index": -1,
                "task_id": task_id,
                "dag_id": dag_id,
                "run_id": run_id,
                "dag_display_name": dag_id,
                "task_display_name": task_id,
                "run_after": run["run_after"],
                "value": self.xcoms[run_id],
            }
        )


UI_URL = "http://airflow.example:8080"
STATES = ("success", "failed", "running", "no_run", "unreachable")


def set_state(airflow: AirflowStub, state: str) -> str | None:
    """Put the stub in one of the monitor's cases; returns the latest run's id (None: no run)."""
    older = dag_run("manual__older", "success")
    airflow.xcoms = {"manual__older": metrics("manual__older", accuracy=0.91, roc_auc=0.95)}
    later = T0 + timedelta(hours=1)
    if state == "success":
        airflow.runs = [older, dag_run("manual__success_run", "success", started=later)]
        airflow.xcoms["manual__success_run"] = metrics("manual__success_run")
        return "manual__success_run"
    if state == "failed":
        airflow.runs = [older, dag_run("manual__failed_run", "failed", started=later)]
        return "manual__failed_run"
    if state == "running":
        airflow.runs = [older, dag_run("manual__running_run", "running", started=later, minutes=None)]
        return "manual__running_run"
    airflow.runs, airflow.xcoms = [], {}
    return None
