"""A real HTTP server on loopback that answers like Airflow 3.1's api-server for what the monitor reads.

The JSON shapes follow airflow/api_fastapi (LoginResponse, DAGRunCollectionResponse,
XComResponseNative, HealthInfoResponse) and the same status codes (201 token, 401 without a valid
bearer token, 404 for an unknown DAG or XCom). Used by the monitor tests and by the benchmark.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
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


def metrics(run_id: str, accuracy: float = 0.9612, roc_auc: float = 0.9874, **fields: Any) -> dict[str, Any]:
    """What load_model_task returns (adclick_ops.tasks.load_model): a TrainingRecord's fields, `fields` changed."""
    from adclick_ops.record import TrainingRecord

    record = {
        "run_id": run_id,
        "dag_id": "Airflow_Lab2",
        "accuracy": accuracy,
        "precision": 0.9701,
        "recall": 0.9503,
        "f1": 0.9601,
        "roc_auc": roc_auc,
        "confusion_matrix": [[97, 3], [5, 95]],
        "n_test": 200,
        "model_path": "/opt/airflow/model/model.sav",
        "estimator": "logistic_regression",
        "scalers": ["minmax", "standard"],
        "model_version": 1,
        "promoted": True,
        "decision_kind": "first",
        "decision": f"promoted: first version (roc_auc {roc_auc:.4f})",
        "champion_version": 1,
    }
    return TrainingRecord.model_validate(record | fields).as_xcom()


def task_instance(
    run_id: str, task_id: str, state: str | None, *, try_number: int = 1, max_tries: int = 0, ended: datetime | None = T0
) -> dict[str, Any]:
    """A TaskInstanceResponse as GET .../dagRuns/{run_id}/taskInstances lists it (the fields the monitor reads and a few more)."""
    return {
        "id": secrets.token_hex(16),
        "task_id": task_id,
        "dag_id": "Airflow_Lab2",
        "dag_run_id": run_id,
        "map_index": -1,
        "logical_date": iso(T0),
        "run_after": iso(T0),
        "start_date": iso(T0),
        "end_date": iso(ended) if state not in ("running", "queued", "scheduled") else None,
        "duration": 1.0,
        "state": state,
        "try_number": try_number,
        "max_tries": max_tries,
        "task_display_name": task_id,
        "operator": "PythonOperator",
        "pool": "default_pool",
        "pool_slots": 1,
    }


TRAINING_TASKS = ("load_data_task", "data_preprocessing_task", "separate_data_outputs_task", "build_save_model_task", "load_model_task")


def failure_record(
    task_id: str, error: str, *, kind: str = "error", try_number: int = 1, max_tries: int = 0, retryable: bool = False
) -> dict[str, Any]:
    """The `failure` XCom a failing task pushes (the shared contract)."""
    return {"task_id": task_id, "try_number": try_number, "error": error, "kind": kind, "retryable": retryable, "max_tries": max_tries}


class AirflowStub:
    """Set `runs` (DAGRunResponse dicts), `xcoms` (run_id -> value) and `dag_ids`; read `calls`.

    Also: `task_instances` (run_id -> list), `task_xcoms` ((run_id, task_id, key) -> value);
    `ignore_limit` lists every run whatever `limit` asks; `drip` (seconds per byte) sends the
    answers of the API one byte at a time.
    """

    def __init__(self, username: str = "airflow", password: str = "airflow"):
        self._default_credentials = {"username": username, "password": password}
        self.credentials = dict(self._default_credentials)
        self.runs: list[dict[str, Any]] = []
        self.xcoms: dict[str, Any] = {}
        self.dag_ids = {"Airflow_Lab2"}
        self.fail_status: int | None = None  # answer every /api/v2 call with this status
        self.task_instances: dict[str, list[dict[str, Any]]] = {}
        self.task_xcoms: dict[tuple[str, str, str], Any] = {}
        self.ignore_limit = False
        self.drip: float | None = None
        # GET /importErrors lists these ({"filename", "stack_trace"}); GET /dags/{id}/details answers with `dag_details`
        self.import_errors: list[dict[str, Any]] = []
        self.dag_details: dict[str, Any] = {}
        self.raw: dict[str, bytes] = {}  # by endpoint ("runs", "tis", "xcom", "health"): these bytes as the answer
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
                Rule("/api/v2/dags/<dag_id>/details", endpoint="details", methods=["GET"]),
                Rule("/api/v2/importErrors", endpoint="import_errors", methods=["GET"]),
                Rule("/api/v2/dags/<dag_id>/dagRuns/<run_id>/taskInstances", endpoint="tis", methods=["GET"]),
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
        self.task_instances, self.task_xcoms, self.ignore_limit, self.drip, self.raw = {}, {}, False, None, {}
        self.credentials = dict(self._default_credentials)
        self.import_errors, self.dag_details = [], {}
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
            if endpoint in self.raw and response.status_code == 200:
                response = Response(self.raw[endpoint], status=200, mimetype="application/json")
        except NotFound:
            response = self._json({"detail": "Not Found"}, 404)
        except HTTPException as exc:
            response = self._json({"detail": exc.description}, exc.code or 500)
        return response(environ, start_response)

    def _json(self, body: Any, status: int = 200) -> Response:
        data = json.dumps(body).encode()
        if self.drip is None:
            return Response(data, status=status, mimetype="application/json")
        delay = self.drip

        def one_byte_at_a_time():
            for i in range(len(data)):
                time.sleep(delay)
                yield data[i : i + 1]

        response = Response(one_byte_at_a_time(), status=status, mimetype="application/json", direct_passthrough=True)
        response.headers["Content-Length"] = str(len(data))
        return response

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
        if self.ignore_limit:
            return self._json({"dag_runs": runs, "total_entries": len(runs)})
        return self._json({"dag_runs": runs[offset : offset + limit], "total_entries": len(runs)})

    def _details(self, request: Request, dag_id: str) -> Response:
        refused = self._guard(request, dag_id)
        if refused:
            return refused
        return self._json({"dag_id": dag_id, "is_stale": False, "is_paused": False, "tags": [], "doc_md": None, **self.dag_details})

    def _import_errors(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._json({"detail": "Not authenticated"}, 401)
        if self.fail_status:
            return self._json({"detail": "Internal Server Error"}, self.fail_status)
        items = [
            {"import_error_id": i + 1, "timestamp": iso(T0), "bundle_name": "dags-folder", **e} for i, e in enumerate(self.import_errors)
        ]
        return self._json({"import_errors": items, "total_entries": len(items)})

    def _tis(self, request: Request, dag_id: str, run_id: str) -> Response:
        refused = self._guard(request, dag_id)
        if refused:
            return refused
        if not any(r["dag_run_id"] == run_id and r["dag_id"] == dag_id for r in self.runs):
            return self._json({"detail": f"The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"}, 404)
        items = self.task_instances.get(run_id, [])
        return self._json({"task_instances": items, "total_entries": len(items)})

    def _xcom(self, request: Request, dag_id: str, run_id: str, task_id: str, key: str) -> Response:
        refused = self._guard(request, dag_id)
        if refused:
            return refused
        run = next((r for r in self.runs if r["dag_run_id"] == run_id and r["dag_id"] == dag_id), None)
        if run is not None and (run_id, task_id, key) in self.task_xcoms:
            value = self.task_xcoms[(run_id, task_id, key)]
        elif run is None or task_id != "load_model_task" or key != "return_value" or run_id not in self.xcoms:
            return self._json({"detail": f"XCom entry with key: `{key}` not found"}, 404)
        else:
            value = self.xcoms[run_id]
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
                "value": value,
            }
        )


UI_URL = "http://airflow.example:8080"
STATES = ("success", "failed", "running", "no_run", "unreachable")
GATE_ERROR = "QualityGateError: model v7 not promoted: accuracy 0.880 < 0.900"
DATA_ERROR = "DataError: advertising.csv: column 'Daily Time Spent on Site' is missing"


def set_state(airflow: AirflowStub, state: str) -> str | None:
    """Put the stub in one of the monitor's cases; returns the latest run's id (None: no run)."""
    older = dag_run("manual__older", "success")
    airflow.xcoms = {"manual__older": metrics("manual__older", accuracy=0.91, roc_auc=0.95)}
    later = T0 + timedelta(hours=1)
    if state == "success":
        airflow.runs = [older, dag_run("manual__success_run", "success", started=later)]
        airflow.xcoms["manual__success_run"] = metrics("manual__success_run")
        return "manual__success_run"
    if state in ("failed", "failed_no_record", "gate"):
        run_id = "manual__failed_run"
        airflow.runs = [older, dag_run(run_id, "failed", started=later)]
        failing = "load_model_task" if state == "gate" else "data_preprocessing_task"
        tis = []
        for task in TRAINING_TASKS:
            if task == failing:
                tis.append(task_instance(run_id, task, "failed", try_number=2 if state == "failed" else 1, max_tries=1))
            elif TRAINING_TASKS.index(task) < TRAINING_TASKS.index(failing):
                tis.append(task_instance(run_id, task, "success"))
            else:
                tis.append(task_instance(run_id, task, "upstream_failed", try_number=0))
        airflow.task_instances[run_id] = tis
        if state == "failed":
            airflow.task_xcoms[(run_id, failing, "failure")] = failure_record(failing, DATA_ERROR, kind="data", try_number=2, max_tries=1)
        if state == "gate":
            airflow.task_xcoms[(run_id, failing, "failure")] = failure_record(failing, GATE_ERROR, kind="gate")
            airflow.xcoms[run_id] = {
                **metrics(run_id, accuracy=0.88, roc_auc=0.93),
                "model_version": 7,
                "promoted": False,
                "champion_version": 6,
            }
        return run_id
    if state == "running":
        run_id = "manual__running_run"
        airflow.runs = [older, dag_run(run_id, "running", started=later, minutes=None)]
        airflow.task_instances[run_id] = [
            task_instance(run_id, "load_data_task", "success"),
            task_instance(run_id, "data_preprocessing_task", "running", try_number=1),
            *(task_instance(run_id, t, None, try_number=0) for t in TRAINING_TASKS[2:]),
        ]
        return run_id
    airflow.runs, airflow.xcoms = [], {}
    return None
