"""The one client of Airflow's REST API v2, for the monitor and the run command: a bearer token, bounded calls.

Every failure to get a usable answer becomes an `AirflowError` whose `reason` is fit to show a
user; callers never see a requests exception. Chosen over the official apache-airflow-client for
its import time and cost per call (docs/performance.md, "Airflow REST client").

Every call has a total deadline, not only connect and read timeouts: a server that sends one byte
per second (a read timeout never fires) is cut when the deadline passes, because a timer shuts the
call's socket down. Bodies are streamed and refused beyond a size cap, so a huge answer costs at
most that much memory.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from adclick_ops import jsonio
from adclick_ops.config.vocabulary import METRICS_TASK_ID, XCOM_FAILURE_KEY, XCOM_RECORD_KEY

MAX_BODY_BYTES = 4 * 1024 * 1024  # the largest answer read from Airflow (100 runs are about 150 KB)
MAX_TASK_INSTANCES = 100  # task instances read for one run
FAILURE_XCOM_KEY = XCOM_FAILURE_KEY


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


def is_text(value: Any) -> bool:
    """Whether `value` is a str that can be written as UTF-8: JSON's "\\ud800" (a lone surrogate) cannot, in a URL or a page."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _tls_reason(exc: BaseException) -> str:
    """Why TLS failed, in OpenSSL's words (a certificate that does not verify, a server that speaks plain HTTP), from
    the ssl error that requests and urllib3 wrap."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(8):  # requests' SSLError -> urllib3's MaxRetryError -> its SSLError -> ssl's
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            reason = str(seen.reason or seen.strerror or seen).replace("_", " ").lower()
            detail = getattr(seen, "verify_message", None)  # which check of the certificate failed
            return f"{reason}: {detail}" if detail else reason
        inner = getattr(seen, "reason", None)
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = inner if isinstance(inner, BaseException) else nested or seen.__cause__ or seen.__context__
    return "no reason given"


def _path_part(value: str) -> str:
    if not is_text(value):
        raise AirflowUnreachable(f"cannot ask Airflow about {value!r:.80}: it is not valid Unicode text")
    return quote(value, safe="")


# -- the total deadline ------------------------------------------------------------------------
class _Watch:
    """The socket a call is using, shut down if the call is still going at its deadline."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.expired = False
        self.finished = False

    def attach(self, sock: socket.socket | None) -> None:
        with self.lock:
            self.sock = sock
            if self.expired and sock is not None:
                _shutdown(sock)

    def expire(self) -> None:
        with self.lock:
            if self.finished:
                return
            self.expired = True
            if self.sock is not None:
                _shutdown(self.sock)


def _shutdown(sock: socket.socket) -> None:
    # shutdown (not close) wakes a recv blocked in another thread; the pool then drops the connection.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_calls = threading.local()  # .watch: the _Watch of the call this thread is making


def _attach(sock: socket.socket | None) -> None:
    watch = getattr(_calls, "watch", None)
    if watch is not None:
        watch.attach(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:  # a kept-alive connection is not connected again
        if self.sock is not None:
            _attach(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:
            _attach(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


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
        deadline: float | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        retry_server_errors_for: float = 0.0,
    ):
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._timeout = (connect_timeout, read_timeout)
        # seconds one call may take in all (connect, send, headers, body); default: connect + read
        self.deadline = float(deadline) if deadline is not None else connect_timeout + read_timeout
        self.max_body_bytes = int(max_body_bytes)
        self._retry_for = retry_server_errors_for  # seconds during which a 500 or 503 is asked again
        self._token: str | None = None
        self._token_lock = threading.Lock()
        # requests.Session is not documented as thread-safe: one per serving thread, kept alive.
        self._local = threading.local()
        # the Date header of the server's latest answer, and time.monotonic() when it came (server_time)
        self._server_clock: tuple[datetime, float] | None = None

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            adapter = _WatchedAdapter()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            # No compression: the size cap then bounds what is read and what is kept alike.
            session.headers["Accept-Encoding"] = "identity"
        return session

    def _drop_session(self) -> None:
        session = getattr(self._local, "session", None)
        self._local.session = None
        if session is not None:
            session.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        timeout: tuple[float, float] | None = None,
        deadline: float | None = None,
        shown: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One HTTP exchange, body included, ended by `deadline` seconds at most (default: the client's).

        `shown` is the deadline named in the error: the whole call's, when this exchange has its rest.
        """
        url = self.base_url + path
        limit = self.deadline if deadline is None else deadline
        said = f"{shown if shown is not None else limit:g}"
        connect, read = timeout or self._timeout
        watch = _Watch()
        timer = threading.Timer(limit, watch.expire)
        timer.daemon = True
        _calls.watch = watch
        timer.start()
        try:
            response = self._session().request(
                method, url, timeout=(min(connect, limit), min(read, limit)), allow_redirects=False, stream=True, **kwargs
            )
            with response:
                response._content = self._read_body(response, path)
            self._note_server_clock(response.headers.get("Date"))
            return response
        except requests.RequestException as exc:
            if watch.expired or isinstance(exc, requests.Timeout):
                self._drop_session()
                raise AirflowUnreachable(f"Airflow at {self.base_url} did not answer within {said} s") from None
            if isinstance(exc, requests.exceptions.SSLError):  # before ConnectionError, which it is too
                raise AirflowUnreachable(f"cannot connect to Airflow at {self.base_url}: TLS failed: {_tls_reason(exc)}") from None
            if isinstance(exc, requests.ConnectionError):
                raise AirflowUnreachable(f"cannot connect to Airflow at {self.base_url}") from None
            raise AirflowUnreachable(f"request to Airflow at {self.base_url} failed: {type(exc).__name__}") from None
        except OSError:
            # a socket shut down at the deadline may surface below requests' own exceptions
            self._drop_session()
            if watch.expired:
                raise AirflowUnreachable(f"Airflow at {self.base_url} did not answer within {said} s") from None
            raise AirflowUnreachable(f"cannot connect to Airflow at {self.base_url}") from None
        finally:
            with watch.lock:
                watch.finished = True
            timer.cancel()
            _calls.watch = None

    def _note_server_clock(self, header: str | None) -> None:
        try:
            date = parsedate_to_datetime(header) if header else None
        except (TypeError, ValueError, IndexError):
            return
        if date is not None and date.tzinfo is not None:
            self._server_clock = (date, time.monotonic())

    def server_time(self) -> datetime | None:
        """A whole second that the server's clock has reached, by its latest answer; None before any answer.

        HTTP's Date header gives the server's time rounded down to the second, so this is the Date of
        the latest answer plus the whole seconds since it came: never ahead of the server's clock,
        whatever the client's own clock says.
        """
        if self._server_clock is None:
            return None
        date, received = self._server_clock
        return date + timedelta(seconds=int(time.monotonic() - received))

    def _read_body(self, response: requests.Response, path: str) -> bytes:
        cap = self.max_body_bytes
        what = path.split("?")[0]
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise AirflowUnreachable(f"Airflow answered {what} with a {encoding}-encoded body, which the monitor did not ask for")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise AirflowUnreachable(f"Airflow's answer to {what} is {int(declared)} bytes, more than the {cap} bytes allowed")
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > cap:
                raise AirflowUnreachable(f"Airflow's answer to {what} is larger than the {cap} bytes allowed")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _json(response: requests.Response, what: str) -> Any:
        try:
            return jsonio.loads(response.content, strict_numbers=False)
        except jsonio.JsonLimitError as exc:
            raise AirflowUnreachable(f"Airflow's answer to {what} cannot be used: {exc}") from None

    def _login(self, stale: str | None, end: float | None = None) -> str:
        with self._token_lock:
            # Another thread may have renewed the token while this one waited.
            if self._token is not None and self._token != stale:
                return self._token
            response = self._request("POST", "/auth/token", deadline=self._left(end), shown=self.deadline, json=self._credentials)
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

    def _left(self, end: float | None) -> float | None:
        """Seconds left before `end` (a time.monotonic value); the call is over when none are."""
        if end is None:
            return None
        left = end - time.monotonic()
        if left <= 0:
            raise AirflowUnreachable(f"Airflow at {self.base_url} did not answer within {self.deadline:g} s")
        return left

    def _call_api_once(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        # One deadline for the whole call: the login, the request and its renewal after a 401.
        end = time.monotonic() + self.deadline
        token = self._token or self._login(None, end)
        response = self._request(
            method, path, deadline=self._left(end), shown=self.deadline, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
        if response.status_code == 401:  # expired or issued by a restarted api-server
            token = self._login(token, end)
            response = self._request(
                method, path, deadline=self._left(end), shown=self.deadline, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
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
        response = self._request("GET", "/api/v2/monitor/health", timeout=(1.0, 2.0), deadline=min(self.deadline, 3.0))
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
        # Airflow may list more than asked (a proxy, a bug, a hostile server): the rest is not read.
        runs = runs[: max(0, limit)]
        # a run id goes into URLs and pages: one that is not text (a lone surrogate) makes the list unusable
        if not all(is_text(r["dag_run_id"]) for r in runs):
            raise AirflowUnreachable("Airflow's list of runs has a run id that is not valid Unicode text")
        return runs

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The task instances of one run (task_id, state, try_number, max_tries, dates), at most MAX_TASK_INSTANCES."""
        path = f"/api/v2/dags/{_path_part(dag_id)}/dagRuns/{_path_part(run_id)}/taskInstances"
        response = self._get_api(path, {"limit": MAX_TASK_INSTANCES})
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise AirflowUnreachable(f"Airflow answered HTTP {response.status_code} to the task instances of {run_id}")
        body = self._json(response, "the task instances")
        items = body.get("task_instances") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise AirflowUnreachable("Airflow's list of task instances has an unexpected shape")
        return [ti for ti in items[:MAX_TASK_INSTANCES] if isinstance(ti, dict) and is_text(ti.get("task_id"))]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        """The XCom `key` of a task in a run (JSON strings and serde wrappers undone), or None when it has none."""
        path = (
            f"/api/v2/dags/{_path_part(dag_id)}/dagRuns/{_path_part(run_id)}"
            f"/taskInstances/{_path_part(task_id)}/xcomEntries/{_path_part(key)}"
        )
        response = self._get_api(path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise AirflowUnreachable(f"Airflow answered HTTP {response.status_code} to the XCom {key} of {task_id} in {run_id}")
        body = self._json(response, f"the XCom {key}")
        return _xcom_value(body.get("value") if isinstance(body, dict) else None)

    def run_metrics(self, dag_id: str, run_id: str) -> Any:
        """The XCom return_value of load_model_task in that run (a TrainingRecord's fields), or None when it has none."""
        return self.xcom(dag_id, run_id, METRICS_TASK_ID, XCOM_RECORD_KEY)


MAX_IMPORT_ERRORS = 100


def import_errors(client: AirflowClient) -> list[dict[str, Any]]:
    """Airflow's import errors (GET /api/v2/importErrors): filename, stack_trace, timestamp; at most MAX_IMPORT_ERRORS."""
    body = client.call("GET", "/importErrors", limit=MAX_IMPORT_ERRORS, order_by="-timestamp")
    items = body.get("import_errors") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise AirflowUnreachable("Airflow's list of import errors has an unexpected shape")
    return [e for e in items[:MAX_IMPORT_ERRORS] if isinstance(e, dict) and isinstance(e.get("filename"), str)]


def dag_details(client: AirflowClient, dag_id: str) -> dict[str, Any] | None:
    """GET /api/v2/dags/{dag_id}/details (is_stale, is_paused, tags, doc_md), or None when Airflow does not know the DAG."""
    try:
        body = client.call("GET", f"/dags/{_path_part(dag_id)}/details")
    except AirflowNotFound:
        return None
    if not isinstance(body, dict):
        raise AirflowUnreachable("Airflow's DAG details have an unexpected shape")
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(_is_tag(t) for t in tags)):
        raise AirflowUnreachable(f"Airflow's DAG details have an unexpected shape: tags {tags!r:.80}")
    return body


def _is_tag(tag: Any) -> bool:
    """A tag of the DAG details: {"name": ...} (DagTagResponse), or a plain name."""
    return isinstance(tag, str) or (isinstance(tag, dict) and isinstance(tag.get("name"), str))


def _xcom_value(value: Any) -> Any:
    # The native answer holds what the task SDK stored: normally the dict itself, but a value pushed
    # through XComModel.serialize_value is a JSON string, and serde may wrap it in __classname__/__data__.
    # Anything else is handed on as it is: its reader says what it expected (record.TrainingRecord.parse).
    if isinstance(value, str):
        try:
            value = jsonio.loads(value, strict_numbers=False)
        except jsonio.JsonLimitError as exc:
            if "not valid JSON" in str(exc):
                return value  # a plain string
            raise AirflowUnreachable(f"an XCom value cannot be used: {exc}") from None
    if isinstance(value, dict) and "__data__" in value and "__classname__" in value:
        value = value["__data__"]
    return value
