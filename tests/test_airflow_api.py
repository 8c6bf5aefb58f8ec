"""adclick_ops.airflow_api: the one REST client, against the stub Airflow API of the monitor tests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adclick_ops.airflow_api import AirflowClient, AirflowNotFound, AirflowServerError, AirflowUnreachable, DagNotFound

from tests.support import free_port
from tests.support.airflow_stub import AirflowStub, dag_run, metrics


@pytest.fixture
def stub():
    server = AirflowStub().start()
    yield server
    server.stop()


def test_call_logs_in_once_and_reads_json(stub):
    stub.runs = [dag_run("manual__1", "success")]
    client = AirflowClient(stub.url, "airflow", "airflow")
    assert client.call("GET", "/dags/Airflow_Lab2/dagRuns", limit=5)["dag_runs"][0]["dag_run_id"] == "manual__1"
    client.call("GET", "/dags/Airflow_Lab2/dagRuns")
    assert stub.calls["token"] == 1 and stub.calls["runs"] == 2


def test_an_expired_token_is_renewed_once(stub):
    client = AirflowClient(stub.url, "airflow", "airflow")
    client.call("GET", "/dags/Airflow_Lab2/dagRuns")
    stub.revoke_tokens()  # as after an api-server restart
    assert client.call("GET", "/dags/Airflow_Lab2/dagRuns")["dag_runs"] == []
    assert stub.calls["token"] == 2


def test_missing_objects_and_unknown_dags_are_not_found(stub):
    client = AirflowClient(stub.url, "airflow", "airflow")
    with pytest.raises(AirflowNotFound, match="HTTP 404"):
        client.call("GET", "/dags/Nope/dagRuns")
    with pytest.raises(DagNotFound, match="does not know the DAG Nope"):
        client.recent_runs("Nope", 5)


def test_refused_credentials_and_a_dead_server_say_so(stub):
    with pytest.raises(AirflowUnreachable, match="refused the monitor's credentials"):
        AirflowClient(stub.url, "airflow", "wrong").call("GET", "/dags/Airflow_Lab2/dagRuns")
    with pytest.raises(AirflowUnreachable, match="cannot connect to Airflow"):
        AirflowClient(f"http://127.0.0.1:{free_port()}", "airflow", "airflow").call("GET", "/dags/Airflow_Lab2")


def test_run_metrics_reads_the_metrics_task(stub):
    stub.runs = [dag_run("manual__1", "success")]
    stub.xcoms = {"manual__1": metrics("manual__1", accuracy=0.97)}
    client = AirflowClient(stub.url, "airflow", "airflow")
    assert client.run_metrics("Airflow_Lab2", "manual__1")["accuracy"] == 0.97
    assert client.run_metrics("Airflow_Lab2", "manual__2") is None


def test_server_errors_are_retried_only_when_asked(stub):
    import threading

    stub.fail_status = 500
    with pytest.raises(AirflowServerError, match="HTTP 500"):
        AirflowClient(stub.url, "airflow", "airflow").call("GET", "/dags/Airflow_Lab2/dagRuns")
    threading.Timer(0.5, lambda: setattr(stub, "fail_status", None)).start()  # as SQLite's lock is released
    patient = AirflowClient(stub.url, "airflow", "airflow", retry_server_errors_for=30)
    assert patient.call("GET", "/dags/Airflow_Lab2/dagRuns")["dag_runs"] == []


def test_an_accepted_status_is_not_an_error(stub):
    client = AirflowClient(stub.url, "airflow", "airflow")
    assert client.call("GET", "/dags/Nope/dagRuns", accept=(404,)) is None


class _Drip:
    """A raw TCP server that answers every connection one byte at a time, `head` then `body`."""

    def __init__(self, head: bytes, body: bytes, every: float = 0.05):
        import socket
        import threading

        self.data, self.every, self.sent = head + body, every, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.cut = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import time

        conn, _ = self.sock.accept()
        conn.recv(65536)
        try:
            for i in range(len(self.data)):
                conn.sendall(self.data[i : i + 1])
                self.sent = i + 1
                time.sleep(self.every)
        except OSError:
            pass
        finally:
            self.cut.set()
            conn.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize(
    ("head", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"a" * 2000 + b"\r\n\r\n", b"{}"),  # slow headers
        (b"HTTP/1.1 201 Created\r\nContent-Length: 4000\r\n\r\n", b'{"access_token": "' + b"t" * 3975 + b'"}'),  # slow body
    ],
    ids=["headers-one-byte-at-a-time", "body-one-byte-at-a-time"],
)
def test_a_server_that_drips_is_cut_at_the_total_deadline(head, body):
    drip = _Drip(head, body)
    try:
        client = AirflowClient(f"http://127.0.0.1:{drip.port}", "airflow", "airflow", read_timeout=5, deadline=0.5)
        with pytest.raises(AirflowUnreachable, match=r"did not answer within 0\.5 s"):
            client.call("GET", "/dags/Airflow_Lab2/dagRuns")
        sent_when_cut = drip.sent
        assert drip.cut.wait(30)  # the server saw its connection shut
        assert sent_when_cut < len(head + body)  # the answer was not read to its end
    finally:
        drip.close()


def test_an_answer_over_the_size_cap_is_refused(stub):
    stub.runs = [dag_run(f"manual__{i}", "success") for i in range(50)]
    client = AirflowClient(stub.url, "airflow", "airflow", max_body_bytes=10_000)
    with pytest.raises(AirflowUnreachable, match="more than the 10000 bytes allowed"):
        client.recent_runs("Airflow_Lab2", 50)
    assert len(client.recent_runs("Airflow_Lab2", 2)) == 2  # a small answer on the same client still works


def test_runs_beyond_the_limit_are_dropped(stub):
    stub.runs = [dag_run(f"manual__{i}", "success") for i in range(30)]
    stub.ignore_limit = True
    assert len(AirflowClient(stub.url, "airflow", "airflow").recent_runs("Airflow_Lab2", 5)) == 5


def test_task_instances_and_any_xcom_are_read(stub):
    from tests.support.airflow_stub import failure_record, task_instance

    stub.runs = [dag_run("manual__1", "failed")]
    stub.task_instances["manual__1"] = [task_instance("manual__1", "load_data_task", "failed", try_number=2)]
    stub.task_xcoms[("manual__1", "load_data_task", "failure")] = failure_record("load_data_task", "E: x")
    client = AirflowClient(stub.url, "airflow", "airflow")
    assert [(t["task_id"], t["try_number"]) for t in client.task_instances("Airflow_Lab2", "manual__1")] == [("load_data_task", 2)]
    assert client.xcom("Airflow_Lab2", "manual__1", "load_data_task", "failure")["error"] == "E: x"
    assert client.xcom("Airflow_Lab2", "manual__1", "load_data_task", "nope") is None
    assert client.task_instances("Airflow_Lab2", "manual__2") == []


class _Clocked:
    """An Airflow API whose clock says `date` (the HTTP Date header of every answer), or, with `ahead`, our time
    plus that many seconds; it hands out a token, knows the DAG Airflow_Lab2, and keeps the bodies of the runs
    posted to it."""

    def __init__(self, date: str | None = None, ahead: float = 0.0):
        import http.server
        import json
        import os
        import threading
        import time
        from email.utils import formatdate

        posted = self.posted = []
        token = os.urandom(8).hex()

        class Handler(http.server.BaseHTTPRequestHandler):
            def date_time_string(self, timestamp=None):  # what send_response puts into the Date header
                return date if date is not None else formatdate(time.time() + ahead, usegmt=True)

            def log_message(self, *args):
                pass

            def _answer(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer({"dag_id": "Airflow_Lab2"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/auth/token":
                    self._answer({"access_token": token})
                else:
                    posted.append(json.loads(body))
                    self._answer({"dag_run_id": posted[-1].get("dag_run_id")})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def clocked(request):
    """A _Clocked server: the test's parameter is the Date it sends, or {"ahead": seconds}; without one, our clock."""
    param = getattr(request, "param", None)
    server = _Clocked(**param) if isinstance(param, dict) else _Clocked(param)
    yield server
    server.close()


@pytest.mark.parametrize("clocked", ["Tue, 01 Jan 2030 10:00:00 GMT"], indirect=True)
def test_server_time_is_the_clock_of_the_server_not_ours(clocked):
    from datetime import UTC, datetime

    client = AirflowClient(clocked.url, "airflow", "airflow")
    assert client.server_time() is None  # nothing heard yet
    client.call("GET", "/dags/Airflow_Lab2")
    assert client.server_time() == datetime(2030, 1, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("clocked", ["soon", "Tue, 01 Jan 2030 10:00:00", "Tue, 99 Foo 2030 99:00:00 GMT", ""], indirect=True)
def test_a_date_header_that_is_not_a_time_with_a_zone_is_not_taken_for_the_servers_clock(clocked):
    client = AirflowClient(clocked.url, "airflow", "airflow")
    assert client.call("GET", "/dags/Airflow_Lab2") == {"dag_id": "Airflow_Lab2"}  # the answer itself is still read
    assert client.server_time() is None


@pytest.mark.parametrize("clocked", [{"ahead": 0.0}, {"ahead": 1.5}, {"ahead": -1.5}], indirect=True, ids=["same", "ahead", "behind"])
def test_a_triggered_run_is_due_before_the_current_second_of_both_clocks(clocked):
    """Airflow's scheduler starts a queued run once run_after <= now() of its database, and SQLite's now() has no
    fraction of a second: the run posted is due before the current second, by the server's clock and by ours
    (which may disagree a little), so that it starts at once."""
    from datetime import UTC, datetime

    from adclick_ops.embedded.run import trigger

    client = AirflowClient(clocked.url, "airflow", "airflow")
    client.call("GET", "/dags/Airflow_Lab2")
    run_id = trigger(client, "Airflow_Lab2", "a note")
    ours = datetime.now(UTC)
    server_second = client.server_time()
    (body,) = clocked.posted
    assert body["dag_run_id"] == run_id and body["note"] == "a note"
    due = datetime.fromisoformat(body["run_after"])
    assert due.microsecond == 999_999 and due < server_second and due < ours
    assert max(server_second, ours) - due < timedelta(seconds=4)  # the request's time, give or take the clocks' difference
    # as SQLite compares them: the text Airflow stores for run_after sorts before CURRENT_TIMESTAMP's
    stored, now = due.strftime("%Y-%m-%d %H:%M:%S.%f"), server_second.strftime("%Y-%m-%d %H:%M:%S")
    assert stored < now


@pytest.mark.parametrize(
    "clocked", ["Tue, 01 Jan 2030 10:00:00 GMT", "Mon, 01 Jan 2001 00:00:00 GMT"], indirect=True, ids=["server-ahead", "server-behind"]
)
def test_a_server_whose_clock_disagrees_with_ours_keeps_airflows_own_run_after(clocked):
    """A server (or a proxy before it) whose clock is years off: which clock is right is unknown, so the run is
    posted without run_after, and it can never be due in the future, nor shown at a time years away."""
    from adclick_ops.embedded.run import trigger

    client = AirflowClient(clocked.url, "airflow", "airflow")
    client.call("GET", "/dags/Airflow_Lab2")
    trigger(client, "Airflow_Lab2", "a note")
    assert "run_after" not in clocked.posted[0]


def test_a_run_triggered_before_any_answer_leaves_run_after_to_airflow(clocked):
    from adclick_ops.embedded.run import trigger

    client = AirflowClient(clocked.url, "airflow", "airflow")
    trigger(client, "Airflow_Lab2", "a note")
    # the run was made before the server's clock was heard: Airflow's own default (its time of the request) holds
    assert "run_after" not in clocked.posted[0]
    trigger(client, "Airflow_Lab2", "a note")
    assert clocked.posted[1]["run_after"].endswith(".999999+00:00")


def test_a_run_id_that_is_not_text_is_an_airflow_error(stub):
    # JSON's "\ud800" decodes to a lone surrogate, which no URL can carry: quote() raised UnicodeEncodeError
    stub.runs = [dag_run("\ud800", "success")]
    client = AirflowClient(stub.url, "airflow", "airflow")
    with pytest.raises(AirflowUnreachable, match="run id that is not valid Unicode text"):
        client.recent_runs("Airflow_Lab2", 5)
    for ask in (
        lambda: client.task_instances("Airflow_Lab2", "\ud800"),
        lambda: client.run_metrics("Airflow_Lab2", "manual__\udc00"),
        lambda: client.xcom("Airflow_Lab2", "r", "\ud800", "failure"),
    ):
        with pytest.raises(AirflowUnreachable, match="not valid Unicode text"):
            ask()


def test_a_task_whose_id_is_not_text_is_left_out(stub):
    from tests.support.airflow_stub import task_instance

    stub.runs = [dag_run("r", "failed")]
    stub.task_instances["r"] = [task_instance("r", "\ud800", "failed"), task_instance("r", "load_data_task", "failed")]
    assert [t["task_id"] for t in AirflowClient(stub.url, "airflow", "airflow").task_instances("Airflow_Lab2", "r")] == ["load_data_task"]


@pytest.fixture
def tls_server(tmp_path):
    """A server that speaks TLS with a self-signed certificate, which no client trusts."""
    import http.server
    import ssl
    import subprocess
    import threading

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_tls_failure_says_why(tls_server, stub):
    """The reason in OpenSSL's words: a certificate that does not verify, a server that speaks plain HTTP."""
    with pytest.raises(
        AirflowUnreachable, match=r"cannot connect to Airflow at https://127\.0\.0\.1:\d+: TLS failed: certificate verify failed"
    ):
        AirflowClient(tls_server, "airflow", "airflow").recent_runs("Airflow_Lab2", limit=1)
    plain = stub.url.replace("http://", "https://")
    with pytest.raises(
        AirflowUnreachable, match=r": TLS failed: (wrong version number|record layer failure|packet length too long)"
    ) as info:
        AirflowClient(plain, "airflow", "airflow").recent_runs("Airflow_Lab2", limit=1)
    assert "no reason given" not in str(info.value)
