"""The monitor against a misbehaving Airflow and hostile requests: it answers, bounded, with a clear reason."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from adclick_ops.monitor import create_app
from adclick_ops.monitor.server import MonitorServer

from tests.monitor import PATIENT
from tests.support.airflow_stub import T0, UI_URL, dag_run, metrics, set_state


def _app(airflow, **config):
    """The app on the stub, patient with it (PATIENT) unless `config` says how long to wait."""
    return create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, **PATIENT, **config})


# -- a slow Airflow ----------------------------------------------------------------------------
def test_an_airflow_that_drips_its_answer_is_cut_at_the_deadline(airflow):
    set_state(airflow, "success")
    airflow.drip = 0.05  # one byte every 50 ms: a read timeout never fires
    client = _app(airflow, AIRFLOW_DEADLINE=0.5, AIRFLOW_WAIT=10).test_client()
    response = client.get("/api/status")
    body = response.get_json()
    assert response.status_code == 503
    assert body["case"] == "unreachable"
    assert "did not answer within 0.5 s" in body["reason"]


def test_health_answers_while_every_page_thread_waits_on_a_slow_airflow(airflow):
    set_state(airflow, "success")
    airflow.drip = 0.05
    # Pages may wait up to 30 s here, so the two page threads stay busy; /health has threads of its own.
    app = create_app({"AIRFLOW_URL": airflow.url, "AIRFLOW_DEADLINE": 20, "AIRFLOW_WAIT": 30, "CACHE_TTL": 5})
    with MonitorServer(app, "127.0.0.1", 0, threads=2) as server, ThreadPoolExecutor(4) as pool:
        pages = [pool.submit(requests.get, f"{server.url}{p}", timeout=60) for p in ("/success", "/api/runs", "/api/status", "/failure")]
        health = requests.get(f"{server.url}/health", timeout=10)
        busy = [not p.done() for p in pages]
        airflow.drip = None
        for p in pages:
            p.result()
    assert health.status_code == 200 and health.json()["service"] == "adclick-monitor"
    assert any(busy)  # /health was answered while pages were still waiting on Airflow


# -- answers larger than asked -----------------------------------------------------------------
def test_more_runs_than_asked_are_cut_to_the_limit(airflow):
    airflow.runs = [dag_run(f"manual__{i:03d}", "success", started=T0.replace(minute=i % 60, hour=i // 60)) for i in range(500)]
    airflow.xcoms = {r["dag_run_id"]: metrics(r["dag_run_id"]) for r in airflow.runs}
    airflow.ignore_limit = True
    client = _app(airflow).test_client()
    assert client.get("/success").status_code == 200
    assert airflow.calls["xcom"] <= 1 + 20  # the latest run, the chart's 20 runs
    assert len(client.get("/api/runs?limit=3").get_json()["runs"]) == 3
    assert airflow.calls["xcom"] <= 1 + 20 + 3


# -- dates -------------------------------------------------------------------------------------
DATES = [
    ("2025-11-20T08:00:00", "2025-11-20T08:03:00+00:00"),
    ("2025-11-20T08:00:00Z", "2025-11-20T08:03:00"),
    ("2025-11-20T09:00:00+01:00", "2025-11-20T08:03:00Z"),
    ("garbage", "2025-11-20T08:03:00Z"),
    (None, None),
    (12345, ["a"]),
    ("", "9999-12-31T23:59:59-12:00"),
    ("0001-01-01T00:00:00+14:00", "2025-11-20"),
    ("2025-11-20T08:03:00Z", "2025-11-20T08:00:00Z"),  # ends before it starts
]


@pytest.mark.parametrize(("start", "end"), DATES)
def test_mixed_and_malformed_dates_never_break_a_page(airflow, start, end):
    older, latest = dag_run("manual__a", "success"), dag_run("manual__b", "failed")
    for run in (older, latest):
        run.update(start_date=start, end_date=end, logical_date=end, duration=None)
    airflow.runs = [older, latest]
    airflow.xcoms = {"manual__a": metrics("manual__a"), "manual__b": metrics("manual__b")}
    client = _app(airflow).test_client()
    for route in ("/", "/success", "/failure", "/running", "/api/status", "/api/runs"):
        response = client.get(route)
        assert response.status_code in (200, 302), (route, response.status_code)
    run = client.get("/api/status").get_json()["run"]
    assert run["duration_seconds"] is None or run["duration_seconds"] >= 0


def test_naive_dates_are_taken_as_utc(client, airflow):
    airflow.runs = [dag_run("r", "success")]
    airflow.runs[0].update(start_date="2025-11-20T08:00:00", end_date="2025-11-20T08:03:00Z", duration=None)
    run = client.get("/api/status").get_json()["run"]
    assert run["start_date"] == "2025-11-20T08:00:00+00:00"
    assert run["duration_seconds"] == 180.0


# -- query values ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("limit=-1", "got '-1'"),
        ("limit=0", "got 0"),
        ("limit=101", "got 101"),
        ("limit=" + "9" * 5000, "got '99999999999999999999…'"),
        ("limit=abc", "got 'abc'"),
        ("limit=2.5", "got '2.5'"),
        ("limit=", "got an empty value"),
        ("limit=%D9%A3", "got '٣'"),  # an Arabic-Indic digit: isdigit() says yes
        ("limit=%C2%B2", "got '²'"),
        ("limit=%00", "got '\\x00'"),
        ("limit=%ff", "got '%FF'"),
        ("limit=%2B5", "got '+5'"),
        ("limit=5%0A", "got '5\\n'"),
        ("limit=%205", "got ' 5'"),
        ("limit=5&limit=6", "given 2 times"),
    ],
)
def test_every_malformed_limit_is_a_400_that_says_why(client, query, found):
    response = client.get(f"/api/runs?{query}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith("limit must be an integer from 1 to 100")
    assert found in error


# -- redirects and headers ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{"Host": "evil.example"}, {"X-Forwarded-Host": "evil.example"}, {"Host": "evil.example", "X-Forwarded-Proto": "https"}],
)
@pytest.mark.parametrize("route", ["/", "/success", "/running", "/failure"])
def test_redirects_never_take_their_host_from_the_request(client_in, headers, route):
    client = client_in("failed")
    response = client.get(route, headers=headers)
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/") and not response.headers["Location"].startswith("//")
        assert "evil" not in response.headers["Location"]


def _assert_security_headers(headers):
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_errors_of_the_app_carry_the_security_headers(airflow):
    app = _app(airflow)

    @app.get("/boom")
    def boom():
        raise RuntimeError("bug")

    client = app.test_client()
    for method, route, code in [("GET", "/nope", 404), ("POST", "/health", 405), ("GET", "/boom", 500), ("GET", "/api/runs?limit=x", 400)]:
        response = client.open(route, method=method)
        assert response.status_code == code
        _assert_security_headers(response.headers)


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"],
    ids=["bad-request-line", "unsupported-transfer-encoding", "negative-content-length"],
)
def test_errors_made_by_waitress_carry_the_security_headers(live_monitor, request_bytes):
    answer = _raw(live_monitor.port, request_bytes).decode("latin-1")
    head = answer.split("\r\n\r\n", 1)[0]
    assert head.startswith("HTTP/1.") and " 200 " not in head.splitlines()[0]
    assert "X-Content-Type-Options: nosniff" in head
    assert "Content-Security-Policy: default-src 'none'" in head
    assert "X-Frame-Options: DENY" in head


def test_favicon_is_served_locally(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/vnd.microsoft.icon"
    assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    with client.get("/static/favicon.svg") as svg:
        assert svg.status_code == 200 and b"<svg" in svg.data
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/failure").get_data(as_text=True)


# -- the port ----------------------------------------------------------------------------------
def test_adclick_ops_monitor_on_a_taken_port_says_so_in_one_line_and_exits_2(other_program):
    done = subprocess.run(
        [sys.executable, "-m", "adclick_ops.cli", "monitor", "--host", "127.0.0.1", "--port", str(other_program)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{other_program}" in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_bad_monitor_setting_is_one_line_and_exit_2(other_program, monkeypatch):
    monkeypatch.setenv("ADCLICK_MONITOR_CACHE_TTL", "soon")
    done = subprocess.run([sys.executable, "-m", "adclick_ops.cli", "monitor", "--port", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "CACHE_TTL must be a number of seconds, got 'soon'" in done.stderr and "Traceback" not in done.stderr


def test_threads_are_not_left_behind_by_a_cut_call(airflow):
    before = threading.active_count()
    set_state(airflow, "success")
    airflow.drip = 0.05
    client = _app(airflow, AIRFLOW_DEADLINE=0.3, AIRFLOW_WAIT=10).test_client()
    client.get("/api/status")
    airflow.drip = None
    client.application.extensions["adclick_monitor"].cache.settle()
    assert threading.active_count() <= before + 1  # the stub's request thread may still be finishing


# -- text that is not text ---------------------------------------------------------------------
@pytest.mark.parametrize("state", ["success", "queued"])
def test_a_run_id_that_is_not_text_is_named_not_a_500(airflow, state):
    set_state(airflow, "success")
    airflow.runs[-1].update(dag_run_id="\ud800", state=state)  # JSON "\ud800": a lone surrogate
    client = _app(airflow, CACHE_TTL=0).test_client()
    assert client.get("/health").status_code == 200
    for route in ("/failure", "/running", "/api/status", "/api/runs"):
        response = client.get(route)
        assert response.status_code == 503, route
        assert "run id that is not valid Unicode text" in response.get_data(as_text=True), route
    assert client.get("/").status_code == client.get("/success").status_code == 302


def test_lone_surrogates_in_other_text_are_shown_not_a_500(airflow):
    set_state(airflow, "failed")
    airflow.runs[-1]["note"] = "a note \ud800"
    airflow.task_xcoms[("manual__failed_run", "data_preprocessing_task", "failure")]["error"] = "DataError: bad \udfff value"
    client = _app(airflow, CACHE_TTL=0).test_client()
    page = client.get("/failure")
    assert page.status_code == 200 and "DataError: bad ? value" in page.get_data(as_text=True)
    assert client.get("/api/status").get_json()["run"]["failure"]["error"] == "DataError: bad \udfff value"


@pytest.mark.parametrize("route", ["/", "/success", "/failure", "/running", "/api/status", "/health"])
def test_a_request_waits_on_a_slow_airflow_for_the_wait_in_all_not_for_each_question(airflow, monkeypatch, route):
    """A page asks Airflow several things (the latest run, the recent runs, the pipelines' state): its waits together
    stay within AIRFLOW_WAIT (/health: HEALTH_WAIT), as documented, instead of one AIRFLOW_WAIT each.

    What is measured is the time spent waiting on Airflow's answers, not the whole request, so that a loaded
    machine (slow to render a page) does not count: without the shared budget, /failure waits 4 s here."""
    import time

    from adclick_ops.monitor.cache import FreshCheck, TTLCache

    waits: list[float] = []

    def timed(method):
        def wrapper(*args, **kwargs):
            start = time.monotonic()
            try:
                return method(*args, **kwargs)
            finally:
                waits.append(time.monotonic() - start)

        return wrapper

    monkeypatch.setattr(TTLCache, "_wait_on", timed(TTLCache._wait_on))
    monkeypatch.setattr(FreshCheck, "ask", timed(FreshCheck.ask))
    set_state(airflow, "failed")
    airflow.drip = 0.05  # answers that never end within the wait
    budget = 0.5 if route == "/health" else 1.0
    client = _app(airflow, AIRFLOW_DEADLINE=20, AIRFLOW_WAIT=1.0, HEALTH_WAIT=0.5, CACHE_TTL=5).test_client()
    try:
        response = client.get(route)
    finally:
        airflow.drip = None
    assert response.status_code in (200, 302, 503)
    assert waits, f"{route} did not wait on Airflow at all"
    # a wait ends within a few milliseconds of its limit; 0.4 s is room for a loaded machine to wake the thread
    assert sum(waits) < budget + 0.4, (
        f"{route} waited {sum(waits):.2f} s on Airflow in {len(waits)} waits; its budget is {budget:g} s in all"
    )
    if route != "/health":
        assert "Airflow has not answered within 1 s" in response.get_data(as_text=True) or response.status_code == 302
