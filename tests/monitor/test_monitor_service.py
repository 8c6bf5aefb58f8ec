"""start_Flask_API's ensure_monitor and the waitress server behind it, on free loopback ports."""

from __future__ import annotations

import http.server
import logging
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from adclick_ops.config.models import Monitor
from adclick_ops.monitor import create_app
from adclick_ops.monitor.ensure import ensure_monitor, probe
from adclick_ops.monitor.server import MonitorPortError, MonitorServer, serve

from helpers import free_port


@pytest.fixture
def live_monitor(airflow):
    """A real monitor under waitress on a free port, in a thread."""
    with MonitorServer(create_app({"AIRFLOW_URL": airflow.url}), "127.0.0.1", 0) as server:
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


def settings(port, airflow_url="http://127.0.0.1:9", serve_for=None) -> Monitor:
    return Monitor(host="127.0.0.1", port=port, airflow_url=airflow_url, dag_id="Airflow_Lab2", serve_for=serve_for)


def test_returns_at_once_when_a_healthy_monitor_answers(live_monitor, caplog):
    caplog.set_level(logging.INFO, logger="adclick_ops.monitor.ensure")
    # Had it tried to serve, binding the busy port would have raised.
    assert ensure_monitor(settings(live_monitor.port)) == f"http://127.0.0.1:{live_monitor.port}"
    assert f"already answers at http://127.0.0.1:{live_monitor.port}" in caplog.text
    assert requests.get(live_monitor.url + "/health", timeout=5).json()["service"] == "adclick-monitor"


def test_environment_overrides_the_yaml_port(live_monitor, monkeypatch, other_program):
    monkeypatch.setenv("ADCLICK_MONITOR_PORT", str(live_monitor.port))
    assert ensure_monitor(settings(other_program)) == f"http://127.0.0.1:{live_monitor.port}"


def test_fails_clearly_when_another_program_holds_the_port(other_program):
    with pytest.raises(MonitorPortError) as raised:
        ensure_monitor(settings(other_program))
    message = str(raised.value)
    assert f"127.0.0.1:{other_program} is held by another program, not the adclick monitor" in message
    assert "ADCLICK_MONITOR_PORT" in message


def test_serves_for_the_given_time_then_returns(airflow):
    port = free_port()
    result = {}
    task = threading.Thread(target=lambda: result.setdefault("url", ensure_monitor(settings(port, airflow.url, serve_for=2))))
    task.start()
    health = _wait_for_health(port)
    assert health["status"] == "ok" and health["airflow"]["reachable"] is True
    assert probe("127.0.0.1", port).kind == "ours"
    task.join(timeout=30)
    assert not task.is_alive()
    assert result["url"] == f"http://127.0.0.1:{port}"
    assert probe("127.0.0.1", port).kind == "free"  # the port is released


@pytest.mark.parametrize("server", ["gunicorn", "waitress"])
def test_serve_refuses_a_busy_port(other_program, server):
    with pytest.raises(MonitorPortError, match=f"cannot listen on 127.0.0.1:{other_program}"):
        serve("127.0.0.1", other_program, "http://127.0.0.1:9", "Airflow_Lab2", server=server)


def test_serve_for_is_refused_with_gunicorn():
    with pytest.raises(ValueError, match="serve_for needs server='waitress'"):
        serve("127.0.0.1", free_port(), server="gunicorn", serve_for=1)


def test_standalone_serve_runs_gunicorn_until_stopped(airflow):
    # What `adclick-ops monitor` runs: serve() in the foreground of its own process.
    port = free_port()
    code = f"from adclick_ops.monitor.server import serve; serve(host='127.0.0.1', port={port}, airflow_url={airflow.url!r}, dag_id='Airflow_Lab2')"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        health = _wait_for_health(port, process)
        assert health["service"] == "adclick-monitor" and health["airflow"]["reachable"] is True
        assert requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()["case"] == "no_run"
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert probe("127.0.0.1", port).kind == "free"


def test_probe_tells_the_three_cases_apart(live_monitor, other_program):
    assert probe("127.0.0.1", live_monitor.port).kind == "ours"
    assert probe("127.0.0.1", other_program).kind == "other"
    assert probe("127.0.0.1", free_port()).kind == "free"


def test_live_monitor_serves_pages_with_headers(live_monitor, airflow):
    response = requests.get(live_monitor.url + "/failure", timeout=5)
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Server"] == "adclick-monitor"
    assert "No run yet" in response.text


def _wait_for_health(port: int, process: subprocess.Popen | None = None) -> dict:
    deadline = time.monotonic() + 30
    while True:
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        except requests.ConnectionError:
            if process is not None and process.poll() is not None:
                pytest.fail(f"the monitor exited early: {process.communicate()[0]}")
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
