"""adclick_ops.airflow_api: the one REST client, against the stub Airflow API of the monitor tests."""

from __future__ import annotations

import pytest

from adclick_ops.airflow_api import AirflowClient, AirflowNotFound, AirflowServerError, AirflowUnreachable, DagNotFound

from airflow_stub import AirflowStub, dag_run, metrics
from helpers import free_port


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
