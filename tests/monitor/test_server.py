"""adclick_ops.monitor.server: the monitor under waitress, and under gunicorn with uvicorn workers, on free loopback ports."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
import requests

from adclick_ops.monitor.ensure import probe
from adclick_ops.monitor.server import MonitorPortError, serve

from tests.support import free_port, wait_for_health
from tests.support.airflow_stub import set_state


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
        health = wait_for_health(port, process)
        assert health["service"] == "adclick-monitor" and health["airflow"]["reachable"] is True
        assert requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()["case"] == "no_run"
        # the server's own error answer (a request line it cannot parse) carries the security headers too
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GARBAGE\r\n\r\n")
            head = sock.recv(65536).decode("latin-1").lower()
        assert head.startswith("http/1.1 400 ")
        assert "x-content-type-options: nosniff" in head and "content-security-policy: default-src 'none'" in head
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "[ERROR]" not in output, output  # each worker ended cleanly on SIGTERM
    assert probe("127.0.0.1", port).kind == "free"


def test_live_monitor_serves_pages_with_headers(live_monitor, airflow):
    response = requests.get(live_monitor.url + "/failure", timeout=5)
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Server"] == "adclick-monitor"
    assert "No run yet" in response.text


def test_gunicorn_answers_health_while_many_pages_wait_on_a_slow_airflow(airflow):
    """`adclick-ops monitor`'s gunicorn: however many page requests wait on a slow Airflow, /health and the
    requests beyond MAX_WAITERS are answered at once; no worker thread pool is ever all waiting."""
    from concurrent.futures import ThreadPoolExecutor

    set_state(airflow, "success")
    airflow.drip = 0.05  # one byte every 50 ms: every answer takes seconds
    port = free_port()
    code = f"from adclick_ops.monitor.server import serve; serve(host='127.0.0.1', port={port}, airflow_url={airflow.url!r}, dag_id='Airflow_Lab2')"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_health(port, process)
        base = f"http://127.0.0.1:{port}"
        with ThreadPoolExecutor(40) as pool:
            # one question for Airflow (the latest run), asked 40 times: at most MAX_WAITERS requests wait on it
            pages = [pool.submit(requests.get, f"{base}/api/status", timeout=60) for _ in range(40)]
            health = requests.get(f"{base}/health", timeout=30)
            waiting = sum(not p.done() for p in pages)
            answers = [p.result() for p in pages]
        assert health.status_code == 200 and health.json()["service"] == "adclick-monitor"
        assert waiting > 0  # /health was answered while pages still waited on Airflow
        turned_away = [a for a in answers if a.status_code == 503 and "requests are already waiting on Airflow" in a.text]
        assert turned_away, [(a.status_code, a.text[:200]) for a in answers]
    finally:
        airflow.drip = None
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


def test_gunicorn_keeps_a_connection_alive_for_a_number_of_requests_then_closes_it(airflow):
    """Keep-alive spares a TCP connection per request; each connection ends after REQUESTS_PER_CONNECTION
    requests, said with `Connection: close`, so that clients come back to whichever worker is free."""
    from http.client import HTTPConnection

    from adclick_ops.monitor.asgi import REQUESTS_PER_CONNECTION

    port = free_port()
    code = f"from adclick_ops.monitor.server import serve; serve(host='127.0.0.1', port={port}, airflow_url={airflow.url!r}, dag_id='Airflow_Lab2')"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_health(port, process)
        for _ in range(2):  # two connections in a row: the count starts again on each
            connection = HTTPConnection("127.0.0.1", port, timeout=10)
            connection.connect()
            sock = connection.sock
            said = []
            for _ in range(REQUESTS_PER_CONNECTION):
                assert connection.sock is sock  # still the first connection
                connection.request("GET", "/health")
                response = connection.getresponse()
                assert response.status == 200 and response.getheader("X-Content-Type-Options") == "nosniff"
                response.read()
                said.append(response.getheader("Connection"))
            # HTTP/1.1 keeps a connection unless told otherwise; the last answer tells
            assert said == [None] * (REQUESTS_PER_CONNECTION - 1) + ["close"]
            assert connection.sock is None  # the client let it go, as told
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


# -- waitress (start_Flask_API) and slow clients ----------------------------------------------
def _partial(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(data)
    return sock


def _answer(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_waitress_answers_health_while_slow_clients_hold_more_connections_than_it_has_threads(live_monitor):
    """A request is read by waitress's loop and reaches a thread only whole: clients that send part of a request
    line and hold it (more of them than threads, 8 + 2) hold connections, never the threads that answer."""
    from adclick_ops.monitor.server import WAITRESS_THREADS

    held = [_partial(live_monitor.port, b"GET /hea") for _ in range(WAITRESS_THREADS + 4)]
    held += [_partial(live_monitor.port, b"GET /health HTTP/1.1\r\nHost: x\r\n") for _ in range(4)]  # a head not ended
    try:
        for _ in range(3):
            response = requests.get(live_monitor.url + "/health", timeout=10)
            assert response.status_code == 200 and response.json()["service"] == "adclick-monitor"
        assert requests.get(live_monitor.url + "/failure", timeout=30).status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_waitress_settings_bound_slow_clients(live_monitor):
    from adclick_ops.monitor import server

    adj = live_monitor._server.adj
    found = (adj.connection_limit, adj.channel_timeout, adj.cleanup_interval, adj.max_request_header_size, adj.max_request_body_size)
    expected = (server.WAITRESS_CONNECTIONS, 10, 1, 64 * 1024, 8 * 1024 * 1024)
    assert found == expected, f"waitress runs with {found}, expected {expected}"


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        (b"GET /health HT", b"request head not received within 0.5 s"),
        (b"POST /api/predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{", b"request body not received within 0.5 s"),
    ],
    ids=["head", "body"],
)
def test_waitress_answers_408_to_a_client_that_drips_its_request(airflow, monkeypatch, sent, said):
    """One byte now and then keeps waitress's idle timeout from firing: the request's own deadline ends it."""
    import time

    from adclick_ops.monitor import create_app, server
    from adclick_ops.monitor.server import MonitorServer

    monkeypatch.setattr(server, "HEAD_SECONDS", 0.5)
    monkeypatch.setattr(server, "BODY_SECONDS", 0.5)
    with MonitorServer(create_app({"AIRFLOW_URL": airflow.url}), "127.0.0.1", 0) as monitor:
        sock = _partial(monitor.port, sent)
        with sock:
            deadline = time.monotonic() + 30
            try:
                while time.monotonic() < deadline:  # a byte every 0.1 s, for at most 30 s
                    sock.sendall(b" " if said.startswith(b"request body") else b"T")
                    time.sleep(0.1)
            except OSError:  # the monitor answered and closed: sending more fails
                pass
            answer = _answer(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert b"Connection: close" in head and b"X-Content-Type-Options: nosniff" in head and b"Cache-Control: no-store" in head
    assert body == said + b"\n"


def test_waitress_answers_408_to_a_client_that_sent_part_of_a_request_then_nothing(airflow, monkeypatch):
    from adclick_ops.monitor import create_app, server
    from adclick_ops.monitor.server import MonitorServer

    monkeypatch.setattr(server, "HEAD_SECONDS", 0.5)
    with MonitorServer(create_app({"AIRFLOW_URL": airflow.url}), "127.0.0.1", 0) as monitor, _partial(monitor.port, b"GET /hea") as sock:
        answer = _answer(sock)  # the periodic look at the connections ends it (CLEANUP_SECONDS)
    assert answer.startswith(b"HTTP/1.1 408 ") and answer.endswith(b"request head not received within 0.5 s\n"), answer[:300]
