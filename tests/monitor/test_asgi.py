"""adclick_ops.monitor.asgi: `adclick-ops monitor`'s ASGI front and HTTP protocol, under a real uvicorn server.

The server runs in this process, on a free loopback port, with the settings gunicorn's workers get
(`server.uvicorn_settings`): uvloop, httptools and the monitor's protocol. Requests go over real sockets.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops.monitor import asgi, create_app
from adclick_ops.monitor.predict import ENDPOINT_KEY
from adclick_ops.monitor.server import SERVER_HEADERS, uvicorn_settings

from tests.support import copy_pipelines, free_port
from tests.support.registry import model_rows, run_chain, training_settings

SECURITY = {name.lower(): value for name, value in SERVER_HEADERS}


@pytest.fixture(scope="module")
def champion_pipelines(tmp_path_factory) -> Path:
    """pipelines/ whose model folder holds one version, the champion."""
    pipelines = copy_pipelines(tmp_path_factory.mktemp("asgi"))
    run_chain(training_settings(pipelines), "r1")
    return pipelines


class Served:
    """A uvicorn server of MonitorASGI in a thread of this process."""

    def __init__(self, flask_app):
        import uvicorn

        self.flask_app = flask_app
        self.port = free_port()
        self.front = asgi.MonitorASGI(flask_app, 4, SERVER_HEADERS)
        config = uvicorn.Config(self.front, host="127.0.0.1", port=self.port, log_config=None, timeout_keep_alive=2, **uvicorn_settings())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _app(pipelines: Path, **config):
    return create_app({"TESTING": True, "PIPELINES": str(pipelines), "AIRFLOW_URL": "http://127.0.0.1:9", **config})


@pytest.fixture(scope="module")
def served(champion_pipelines) -> Iterator[Served]:
    with Served(_app(champion_pipelines)) as server:
        yield server


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def head_of(answer: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = [(name.lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines)]
    return int(status_line.split()[1]), fields, body


def assert_secured_once(fields: list[tuple[str, str]]) -> None:
    """Every security header and the Server header exactly once, with the monitor's values."""
    for name, value in SECURITY.items():
        assert [v for n, v in fields if n == name] == [value], (name, fields)


def post(port: int, body: bytes, extra: bytes = b"") -> bytes:
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    return exchange(port, head + b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)


def wsgi_answer(app, body: bytes):
    response = app.test_client().post("/api/predict", data=body, content_type="application/json")
    return response.status_code, response.get_data(), response.headers


BODIES = {
    "200": json.dumps({"rows": model_rows(3)}).encode(),
    "200 empty rows": b'{"rows": []}',
    "400 row": json.dumps({"rows": [{**model_rows(1)[0], "Age": "35"}]}).encode(),
    "400 json": b"{not json",
    "400 field": b'{"rows": [], "x": 1}',
    "400 utf-8": b"\xff\xfe{}",
    "400 empty": b"",
    "400 deep": b'{"rows": ' + b"[" * 40 + b"]" * 40 + b"}",
    "400 NaN": json.dumps({"rows": [{**model_rows(1)[0], "Age": float("nan")}]}).encode(),
    "400 many rows": json.dumps({"rows": model_rows(1) * 10_001}).encode(),
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_the_event_loop_lane_answers_as_the_wsgi_lane(served, body):
    """Status, body and headers of POST /api/predict are those of the WSGI lane (and so of Flask's view);
    the server's own headers come once, not twice."""
    status, fields, got = head_of(post(served.port, body))
    expected_status, expected_body, expected_headers = wsgi_answer(served.flask_app, body)
    assert (status, got) == (expected_status, expected_body)
    assert_secured_once(fields)
    for name, value in expected_headers.items():
        assert (name.lower(), value) in fields
    assert {n for n, _ in fields} <= {n.lower() for n in expected_headers.keys()} | {"server", "date", "connection"}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
            max_leaves=12,
        ).map(lambda value: json.dumps({"rows": value}).encode()),
        st.lists(
            st.fixed_dictionaries({}, optional={f: st.floats() | st.integers() | st.text(max_size=4) for f in model_rows(1)[0]}),
            max_size=3,
        ).map(lambda rows: json.dumps({"rows": rows}).encode()),
    )
)
def test_generated_bodies_are_answered_alike_by_both_lanes(served, body):
    status, fields, got = head_of(post(served.port, body))
    assert (status, got) == wsgi_answer(served.flask_app, body)[:2]
    assert_secured_once(fields)


def test_a_body_beyond_the_bound_is_refused_unread_and_the_connection_closed(champion_pipelines):
    with Served(_app(champion_pipelines, PREDICT_MAX_BYTES=1000)) as server:
        # declared too long: answered at once, before any of the body is sent
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status, fields, body = head_of(answer)
        assert status == 400 and ("connection", "close") in fields
        assert json.loads(body)["error"] == "request body: 5,000,000 bytes; at most 1,000 bytes per request"
        # chunked, so its length is found only in reading
        chunks = b"".join(b"%x\r\n%s\r\n" % (300, b"x" * 300) for _ in range(5)) + b"0\r\n\r\n"
        answer = exchange(server.port, b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
        status, fields, body = head_of(answer)
        assert status == 400 and ("connection", "close") in fields
        assert json.loads(body)["error"] == "request body: more than 1,000 bytes; at most 1,000 bytes per request"
        assert_secured_once(fields)
        # a body just within the bound is read and judged as JSON
        status, _, body = head_of(post(server.port, b" " * 990 + b"[]"))
        assert status == 400 and "expected {" in json.loads(body)["error"]


@pytest.mark.parametrize(
    "request_head, status, says",
    [
        (b"GARBAGE\r\n\r\n", 400, b"invalid HTTP request"),
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n",
            431,
            b"more than 100 header fields",
        ),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024), 431, b"request head longer than 65,536 bytes"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, b"request target longer than 4,094 bytes"),
        (b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400, b"invalid HTTP request"),
        (
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            b"invalid HTTP request",
        ),
    ]
    + [
        (request, 400, b"invalid HTTP request")
        for request in (
            b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n",
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        )
    ],
    ids=["garbage", "101 fields", "head 70 KiB", "target 5,000 bytes", "two lengths", "length and chunked"]
    + [
        "non-ASCII target",
        "NUL in a header",
        "folded header",
        "HTTP/2 preface",
        "CONNECT",
        "negative length",
        "length overflow",
        "bad chunk",
    ],
)
def test_the_server_s_own_refusals_are_secured_and_close(served, request_head, status, says):
    got_status, fields, body = head_of(exchange(served.port, request_head))
    assert got_status == status and says in body
    assert_secured_once(fields)
    assert ("connection", "close") in fields and ("cache-control", "no-store") in fields
    # the server serves on
    assert requests.get(served.url + "/health", timeout=10).status_code == 200


def test_pipelined_requests_are_answered_in_order(served):
    one = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    predict = json.dumps({"rows": model_rows(1)}).encode()
    two = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(predict), predict)
    last = b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answers = exchange(served.port, one + two + last)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answers) == [b"200", b"200", b"404"]


def test_a_head_too_slow_is_answered_408_and_a_silent_connection_closed(served, monkeypatch):
    monkeypatch.setattr(asgi, "HEAD_TIMEOUT", 0.5)
    status, fields, body = head_of(exchange(served.port, b"GET /health HTTP/1.1\r\nHost: x\r\n"))
    assert status == 408 and b"request head not received within 0.5 s" in body
    assert_secured_once(fields)
    assert exchange(served.port, b"") == b""  # nothing asked: closed without an answer
    # a kept-alive connection idle past the keep-alive time is closed, and one that asks in time is served
    connection = HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        connection.request("GET", "/health")
        assert connection.getresponse().read() and connection.sock is not None
        time.sleep(1)  # past the head deadline, within keep-alive: the next request is served
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/api/predict", "/models"])
def test_a_body_too_slow_is_answered_408(served, monkeypatch, path):
    monkeypatch.setattr(asgi, "BODY_TIMEOUT", 0.5)
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n" % path.encode()
    status, fields, body = head_of(exchange(served.port, head + b'{"rows": ['))
    assert status == 408 and b"request body not received within 0.5 s" in body
    assert_secured_once(fields)
    # a body sent in time, in pieces, is read whole
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        payload = json.dumps({"rows": model_rows(1)}).encode()
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(payload))
        for piece in (payload[:10], payload[10:]):
            time.sleep(0.1)
            sock.sendall(piece)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert head_of(answer)[0] == 200


def test_a_connection_serves_a_number_of_requests_then_says_close(served, monkeypatch):
    monkeypatch.setattr(asgi, "REQUESTS_PER_CONNECTION", 5)
    connection = HTTPConnection("127.0.0.1", served.port, timeout=10)
    connection.connect()
    said = []
    for _ in range(5):
        connection.request("POST", "/api/predict", body=json.dumps({"rows": model_rows(1)}), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        response.read()
        said.append(response.getheader("Connection"))
    assert said == [None] * 4 + ["close"] and connection.sock is None


def test_pages_go_to_flask_with_each_header_once(served):
    status, fields, body = head_of(exchange(served.port, b"GET /models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 200 and b"Model versions" in body
    assert_secured_once(fields)
    status, fields, body = head_of(exchange(served.port, b"GET /api/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 405 and json.loads(body) == {"error": "Method Not Allowed", "status": 405}
    assert_secured_once(fields)


def test_pages_are_flask_s_whole_answers(served):
    """Query strings, HEAD, static files and the route table reach Flask as under any WSGI server."""
    response = requests.get(served.url + "/api/models?x=%3Cb%3E", timeout=10)
    assert response.status_code == 200 and response.json()["champion"] == 1
    head = requests.head(served.url + "/models", timeout=10)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) > 100
    icon = requests.get(served.url + "/favicon.ico", timeout=10)
    assert icon.status_code == 200 and icon.content and "no-store" not in icon.headers.get("Cache-Control", "")
    missing = requests.get(served.url + "/nowhere", timeout=10)
    assert missing.status_code == 404 and "nosniff" == missing.headers["X-Content-Type-Options"]
    # a body on a page request is read (no page reads one): within the bound Flask answers, beyond it 413
    assert requests.post(served.url + "/models", data=b"x" * 1000, timeout=10).status_code == 405
    status, fields, body = head_of(post_to(served.port, "/models", b"x" * (asgi.PAGE_BODY_BYTES + 1)))
    assert status == 413 and b"request body longer than 65,536 bytes" in body
    assert ("connection", "close") in fields
    assert_secured_once(fields)
    # declared too long: answered before the body is sent; chunked: found too long in reading
    status, _, _ = head_of(exchange(served.port, b"POST /models HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n"))
    assert status == 413
    chunks = b"".join(b"%x\r\n%s\r\n" % (40000, b"x" * 40000) for _ in range(2)) + b"0\r\n\r\n"
    status, _, _ = head_of(exchange(served.port, b"POST /models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks))
    assert status == 413


def post_to(port: int, path: str, body: bytes) -> bytes:
    return exchange(port, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(), len(body)) + body)


def test_a_client_gone_mid_body_costs_nothing(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b'POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"rows":')
    response = requests.post(served.url + "/api/predict", json={"rows": model_rows(1)}, timeout=10)
    assert response.status_code == 200 and response.json()["model_version"] == 1


def test_a_slow_look_at_the_registry_never_holds_up_the_loop(champion_pipelines, monkeypatch):
    """When the champion pointer must be read again (a stat, or a HEAD on S3 that may be slow), the request
    waits on a thread: /health, pages and other work of the event loop go on meanwhile."""
    from adclick_ops.monitor.predict import ChampionSource

    entered, release = threading.Event(), threading.Event()
    reload = ChampionSource._reload

    def slow_reload(self):
        entered.set()
        release.wait(30)
        reload(self)

    monkeypatch.setattr(ChampionSource, "_reload", slow_reload)
    with Served(_app(champion_pipelines, PREDICT_REFRESH=0)) as server:
        answer = {}
        waiting = threading.Thread(
            target=lambda: answer.update(r=requests.post(server.url + "/api/predict", json={"rows": model_rows(1)}, timeout=30))
        )
        waiting.start()
        assert entered.wait(10)
        health = requests.get(server.url + "/health", timeout=10)  # answered while the look at the registry waits
        assert health.status_code == 200 and waiting.is_alive()
        release.set()
        waiting.join(30)
    assert answer["r"].status_code == 200


def test_the_loop_scores_from_memory_only(served, monkeypatch):
    """A small body is scored on the event loop while the champion is known. When the pointer is due for a
    look (a stat, or a HEAD on S3), and for a batch, the request is answered on a thread: the loop never
    waits on storage."""
    from adclick_ops.monitor.predict import ChampionSource

    endpoint = served.flask_app.extensions[ENDPOINT_KEY]
    scored, looked = [], []
    answer_body, reload = endpoint.answer_body, ChampionSource._reload

    def recording(raw, **how):
        scored.append(threading.current_thread().name)
        return answer_body(raw, **how)

    def looking(self):
        looked.append(threading.current_thread().name)
        reload(self)

    monkeypatch.setattr(endpoint, "answer_body", recording)
    monkeypatch.setattr(ChampionSource, "_reload", looking)
    monkeypatch.setattr(endpoint.source, "refresh", 3600.0)  # the champion stays known
    small = json.dumps({"rows": model_rows(1)}).encode()
    large = json.dumps({"rows": model_rows(1) * 200}).encode()
    assert len(small) <= asgi.INLINE_BODY_BYTES < len(large)
    for body in (small, small, large):
        assert head_of(post(served.port, body))[0] == 200
    assert [name.startswith("adclick-predict") for name in scored[-3:]] == [False, False, True], scored
    monkeypatch.setattr(endpoint.source, "refresh", 0.0)  # every request is due for a look
    scored.clear()
    for _ in range(3):
        assert head_of(post(served.port, small))[0] == 200
    assert len(looked) >= 3 and all(name.startswith("adclick-predict") for name in looked), looked
    assert scored[-1].startswith("adclick-predict")  # tried from memory on the loop, then answered on a thread


def test_a_bug_is_a_500_with_the_headers_and_logged(served, monkeypatch, caplog):
    endpoint = served.flask_app.extensions[ENDPOINT_KEY]

    def broken(raw, **how):
        raise RuntimeError("a bug")

    monkeypatch.setattr(endpoint, "answer_body", broken)
    status, fields, body = head_of(post(served.port, b'{"rows": []}'))
    assert status == 500 and json.loads(body) == {"error": "internal error of the monitor", "status": 500}
    assert_secured_once(fields)
    assert "monitor error on /api/predict" in caplog.text and "RuntimeError: a bug" in caplog.text
