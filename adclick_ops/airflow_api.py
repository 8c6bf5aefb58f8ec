"""The one client of Airflow's REST API v2, for the monitor and the run command: a bearer token, short timeouts.

Every failure to get a usable answer becomes an `AirflowError` whose `reason` is fit to show a
user; callers never see a requests exception. Chosen over the official apache-airflow-client for
its import time and cost per call (docs/performance.md, "Airflow REST client").
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import quote

import requests

from adclick_ops.config.vocabulary import METRICS_TASK_ID


class AirflowError(Exception):
    """Airflow did not give the monitor what it asked for; `reason` says why, in the user's words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class AirflowUnreachable(AirflowError):
    """No usable answer: connection refused, timeout, server error, refused credentials, bad JSON."""


class AirflowServerError(AirflowUnreachable):
    """Airflow answered with a server error (HTTP 5xx); on SQLite often a moment's lock."""


class AirflowNotFound(AirflowError):
    """Airflow answers, but has no such object (HTTP 404)."""


class DagNotFound(AirflowNotFound):
    """Airflow answers but does not know the DAG (not parsed yet, or a wrong `dag_id`)."""


def _path_part(value: str) -> str:
    return quote(value, safe="")


class AirflowClient:
    """Client of /api/v2 with a token from POST /auth/token, renewed once on a 401."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        retry_server_errors_for: float = 0.0,
    ):
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._timeout = (connect_timeout, read_timeout)
        self._retry_for = retry_server_errors_for  # seconds during which a 500 or 503 is asked again
        self._token: str | None = None
        self._token_lock = threading.Lock()
        # requests.Session is not documented as thread-safe: one per serving thread, kept alive.
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _request(self, method: str, path: str, *, timeout: tuple[float, float] | None = None, **kwargs: Any) -> requests.Response:
        url = self.base_url + path
        try:
            return self._session().request(method, url, timeout=timeout or self._timeout, allow_redirects=False, **kwargs)
        except requests.Timeout:
            raise AirflowUnreachable(f"Airflow at {self.base_url} did not answer within {self._timeout[1]:g} s") from None
        except requests.ConnectionError:
            raise AirflowUnreachable(f"cannot connect to Airflow at {self.base_url}") from None
        except requests.RequestException as exc:
            raise AirflowUnreachable(f"request to Airflow at {self.base_url} failed: {type(exc).__name__}") from None

    @staticmethod
    def _json(response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise AirflowUnreachable(f"Airflow answered {what} with something that is not JSON") from None

    def _login(self, stale: str | None) -> str:
        with self._token_lock:
            # Another thread may have renewed the token while this one waited.
            if self._token is not None and self._token != stale:
                return self._token
            response = self._request("POST", "/auth/token", json=self._credentials)
            if response.status_code in (401, 403):
                raise AirflowUnreachable(
                    f"Airflow refused the monitor's credentials (HTTP {response.status_code}); "
                    "check ADCLICK_AIRFLOW_USER and ADCLICK_AIRFLOW_PASSWORD"
                )
            if response.status_code not in (200, 201):
                raise AirflowUnreachable(f"Airflow answered HTTP {response.status_code} to POST /auth/token")
            token = self._json(response, "POST /auth/token")
            if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
                raise AirflowUnreachable("Airflow's POST /auth/token answer has no access_token")
            self._token = token["access_token"]
            return self._token

    def _get_api(self, path: str, params: dict[str, Any] | None = None) -> requests.Response:
        return self._call_api("GET", path, params=params)

    def _call_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        deadline = time.monotonic() + self._retry_for
        while True:
            try:
                return self._call_api_once(method, path, **kwargs)
            except AirflowServerError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(1)

    def _call_api_once(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        token = self._token or self._login(None)
        response = self._request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        if response.status_code == 401:  # expired or issued by a restarted api-server
            token = self._login(token)
            response = self._request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        if response.status_code in (401, 403):
            raise AirflowUnreachable(f"Airflow refused access to {path.split('?')[0]} (HTTP {response.status_code})")
        if response.status_code >= 500:
            raise AirflowServerError(f"Airflow answered HTTP {response.status_code} (server error)")
        return response

    def call(self, method: str, path: str, *, body: dict[str, Any] | None = None, accept: tuple[int, ...] = (), **params: Any) -> Any:
        """`method` /api/v2`path` as JSON (None for a status in `accept`); 404 raises AirflowNotFound, any other failure AirflowUnreachable."""
        response = self._call_api(method, f"/api/v2{path}", params=params or None, json=body)
        if response.status_code in accept:
            return None
        if response.status_code == 404:
            raise AirflowNotFound(f"Airflow has no {path} (HTTP 404)")
        if response.status_code not in (200, 201):
            raise AirflowUnreachable(f"Airflow answered HTTP {response.status_code} to {method} {path}")
        return self._json(response, f"{method} {path}")

    def health(self) -> dict[str, Any]:
        """GET /api/v2/monitor/health (no token needed), with a tighter timeout: it backs /health."""
        response = self._request("GET", "/api/v2/monitor/health", timeout=(1.0, 2.0))
        if response.status_code != 200:
            raise AirflowUnreachable(f"Airflow health endpoint answered HTTP {response.status_code}")
        body = self._json(response, "GET /api/v2/monitor/health")
        return body if isinstance(body, dict) else {}

    def recent_runs(self, dag_id: str, limit: int) -> list[dict[str, Any]]:
        """The DAG's latest runs, newest first, as the API's DAGRunResponse dicts."""
        path = f"/api/v2/dags/{_path_part(dag_id)}/dagRuns"
        response = self._get_api(path, {"order_by": "-run_after", "limit": limit})
        if response.status_code == 404:
            raise DagNotFound(f"Airflow does not know the DAG {dag_id} (not parsed yet?)")
        if response.status_code != 200:
            raise AirflowUnreachable(f"Airflow answered HTTP {response.status_code} to the list of runs")
        body = self._json(response, "the list of runs")
        runs = body.get("dag_runs") if isinstance(body, dict) else None
        if not isinstance(runs, list) or not all(isinstance(r, dict) and isinstance(r.get("dag_run_id"), str) for r in runs):
            raise AirflowUnreachable("Airflow's list of runs has an unexpected shape")
        return runs

    def run_metrics(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        """The XCom return_value of load_model_task in that run, or None when it has none."""
        path = f"/api/v2/dags/{_path_part(dag_id)}/dagRuns/{_path_part(run_id)}/taskInstances/{METRICS_TASK_ID}/xcomEntries/return_value"
        response = self._get_api(path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise AirflowUnreachable(f"Airflow answered HTTP {response.status_code} to the metrics of {run_id}")
        body = self._json(response, "the metrics XCom")
        return _xcom_value(body.get("value") if isinstance(body, dict) else None)


def _xcom_value(value: Any) -> dict[str, Any] | None:
    # The native answer holds what the task SDK stored: normally the dict itself, but a value pushed
    # through XComModel.serialize_value is a JSON string, and serde may wrap it in __classname__/__data__.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict) and "__data__" in value and "__classname__" in value:
        value = value["__data__"]
    return value if isinstance(value, dict) else None
