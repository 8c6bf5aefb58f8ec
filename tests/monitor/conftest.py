"""Fixtures of the monitor tests: a stub Airflow API on a free loopback port, the app and its client."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from adclick_ops.monitor import create_app
from adclick_ops.monitor.server import MonitorServer

from tests.monitor import PATIENT
from tests.support import free_port
from tests.support.airflow_stub import UI_URL, AirflowStub, set_state
from tests.support.broken_pipeline import render_broken

MONITOR_ENV = (
    "ADCLICK_AIRFLOW_URL",
    "ADCLICK_AIRFLOW_UI_URL",
    "ADCLICK_AIRFLOW_USER",
    "ADCLICK_AIRFLOW_PASSWORD",
    "ADCLICK_MONITOR_DAG_ID",
    "ADCLICK_MONITOR_CACHE_TTL",
    "ADCLICK_MONITOR_HOST",
    "ADCLICK_MONITOR_PORT",
)


@pytest.fixture(autouse=True)
def _clean_monitor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own settings must not leak into what the tests build.
    for name in MONITOR_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def _stub_server() -> Iterator[AirflowStub]:
    stub = AirflowStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def airflow(_stub_server: AirflowStub) -> AirflowStub:
    """The stub Airflow API, emptied: no run yet, fresh call counts, no token issued."""
    _stub_server.reset()
    return _stub_server


@pytest.fixture
def app(airflow: AirflowStub) -> Flask:
    return create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, **PATIENT})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def client_in(airflow: AirflowStub) -> Callable[[str], FlaskClient]:
    """A test client of a fresh app whose Airflow is in `state` (unreachable: nothing listens)."""

    def build(state: str) -> FlaskClient:
        set_state(airflow, state)
        url = f"http://127.0.0.1:{free_port()}" if state == "unreachable" else airflow.url
        return create_app({"TESTING": True, "AIRFLOW_URL": url, "AIRFLOW_UI_URL": UI_URL, **PATIENT}).test_client()

    return build


@pytest.fixture
def live_monitor(airflow):
    """A real monitor under waitress on a free port, in a thread."""
    with MonitorServer(create_app({"AIRFLOW_URL": airflow.url, **PATIENT}), "127.0.0.1", 0) as server:
        yield server


class _NotOurs(http.server.BaseHTTPRequestHandler):
    body = b'{"status": "ok"}'  # healthy JSON, but not the adclick monitor's

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def other_program():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotOurs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def broken_render(tmp_path_factory) -> dict:
    """A pipeline file that no longer validates while its last valid version runs (tests/support/broken_pipeline.py), rendered once."""
    return render_broken(tmp_path_factory.mktemp("project"))
