"""Airflow_Lab2 through real Airflow (`airflow dags test`), with a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.support import SEED_TASKS, body_text, edit_yaml, free_port, run_airflow, smtp_connection_uri

pytestmark = pytest.mark.airflow


def task_states(env: dict[str, str]) -> dict[str, str]:
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(db) as con:
        return dict(con.execute("select task_id, state from task_instance where dag_id = 'Airflow_Lab2'").fetchall())


def run_ids(env: dict[str, str]) -> list[str]:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as con:
        return [r[0] for r in con.execute("select run_id from dag_run where dag_id = 'Airflow_Lab2'")]


def no_retries(pipelines: Path) -> None:
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["default_args"].update(retries=0))


def test_dags_test_trains_reports_and_triggers(airflow_home, smtp_server, tmp_path):
    env = airflow_home(**smtp_server.connection_env())
    result = run_airflow(["dags", "test", "Airflow_Lab2"], env)
    assert result.returncode == 0, result.stdout[-5000:]
    assert task_states(env) == dict.fromkeys(SEED_TASKS, "success")
    (run_id,) = run_ids(env)
    model = tmp_path / "model" / "model.sav"
    assert model.exists() and model.stat().st_size > 0
    metrics_files = list((tmp_path / "runs" / "Airflow_Lab2").glob("*/metrics.json"))
    metrics = json.loads(metrics_files[0].read_text())
    assert metrics["accuracy"] >= 0.95 and metrics["run_id"] == run_id

    assert len(smtp_server.messages) == 1
    recipients, message = smtp_server.messages[0]
    assert recipients == ["ml-team@example.com"]
    assert message["Subject"] == f"[adclick-ops] Airflow_Lab2 succeeded: accuracy {metrics['accuracy']:.3f}, v1 champion"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.walk()][1:] == ["text/plain", "text/html"]
    text = body_text(message)
    assert f"{metrics['accuracy']:.4f}" in text and f"{metrics['roc_auc']:.4f}" in text
    assert str(model) in text
    assert "/dags/Airflow_Lab2/runs/" in text and "http://localhost:5555" in text
    assert "First version: no champion before it to compare with." in text and "Run time so far:" in text

    # Task logs (printed by dags test) carry no deprecation warning from our code or configuration,
    # nor the third-party ones filtered in config/embedded.env (docs/performance.md, "Warnings").
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "Warning" in line and "py.warnings" in line]
    assert warnings == [], "\n".join(warnings)


def test_recipients_from_the_yaml_receive_the_report(airflow_home, smtp_server, pipelines):
    edit_yaml(
        pipelines / "airflow_lab2.yaml",
        lambda d: d["Airflow_Lab2"]["notify"]["email"].update(to=["data-team@example.org", "lead@example.org"]),
    )
    env = airflow_home(**smtp_server.connection_env())
    result = run_airflow(["dags", "test", "Airflow_Lab2"], env)
    assert result.returncode == 0, result.stdout[-5000:]
    assert [r for r, _ in smtp_server.messages] == [["data-team@example.org", "lead@example.org"]]


def test_missing_dataset_sends_a_failure_alert(airflow_home, smtp_server, pipelines, tmp_path):
    missing = tmp_path / "no-such-file.csv"
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(dataset=str(missing)))
    no_retries(pipelines)
    env = airflow_home(**smtp_server.connection_env())
    run_airflow(["dags", "test", "Airflow_Lab2"], env)
    states = task_states(env)
    assert states["load_data_task"] == "failed"
    assert states["my_trigger_task"] == "success"  # all_done: the monitor is triggered anyway
    alerts = [m for _, m in smtp_server.messages if " failed: " in m["Subject"]]
    assert len(alerts) == 1
    assert alerts[0]["Subject"] == "[adclick-ops] Airflow_Lab2 failed: load_data_task (try 1 of 1)"
    assert [p.get_content_type() for p in alerts[0].walk()][1:] == ["text/plain", "text/html"]
    body = body_text(alerts[0])
    assert str(missing) in body and "dataset file not found" in body
    assert "Try 1 of 1." in body and "/tasks/load_data_task?try_number=1" in body


def test_smtp_server_down_fails_send_email_clearly_and_still_triggers(airflow_home, pipelines, tmp_path):
    no_retries(pipelines)
    port = free_port()  # nothing listens there
    env = airflow_home(AIRFLOW_CONN_SMTP_DEFAULT=smtp_connection_uri("127.0.0.1", port))
    result = run_airflow(["dags", "test", "Airflow_Lab2"], env)
    states = task_states(env)
    assert states["send_email"] == "failed"
    assert states["load_model_task"] == "success" and states["my_trigger_task"] == "success"
    output = result.stdout + result.stderr
    assert f"cannot send the report through the SMTP server at 127.0.0.1:{port}" in output, output[-5000:]
    assert "ConnectionRefusedError" in output
    assert (tmp_path / "model" / "model.sav").exists()
    assert list((tmp_path / "runs" / "Airflow_Lab2").glob("*/metrics.json"))


def failure_records(env: dict[str, str]) -> dict[str, dict]:
    """The `failure` XComs of the run, by task id (adclick_ops.failures)."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as con:
        rows = con.execute("select task_id, value from xcom where dag_id = 'Airflow_Lab2' and key = 'failure'").fetchall()
    return {task_id: json.loads(value) for task_id, value in rows}


def tries(env: dict[str, str]) -> dict[str, int]:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as con:
        return dict(con.execute("select task_id, try_number from task_instance where dag_id = 'Airflow_Lab2'").fetchall())


def retries(pipelines: Path, n: int) -> None:
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["default_args"].update(retries=n, retry_delay_sec=0))


def test_a_missing_dataset_fails_on_the_first_try_without_retry_and_is_recorded(airflow_home, pipelines, tmp_path):
    missing = tmp_path / "no-such-file.csv"
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(dataset=str(missing)))
    retries(pipelines, 1)
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["notify"]["email"].update(on_failure=False))
    env = airflow_home()
    run_airflow(["dags", "test", "Airflow_Lab2"], env)
    assert task_states(env)["load_data_task"] == "failed"
    assert tries(env)["load_data_task"] == 1  # retries: 1, yet no second try
    record = failure_records(env)["load_data_task"]
    assert record == {
        "task_id": "load_data_task",
        "try_number": 1,
        "error": f"DataError: {missing}: dataset file not found",
        "kind": "data",
        "retryable": False,
        "max_tries": 1,
    }


def test_a_gate_failure_is_not_retried_and_names_the_version_and_the_gate(airflow_home, smtp_server, pipelines):
    edit_yaml(
        pipelines / "airflow_lab2.yaml",
        lambda d: d["Airflow_Lab2"]["training"].update(promotion={"min_accuracy": 0.99, "fail_run": "below_floor"}),
    )
    retries(pipelines, 1)
    env = airflow_home(**smtp_server.connection_env())
    run_airflow(["dags", "test", "Airflow_Lab2"], env)
    assert task_states(env)["load_model_task"] == "failed" and tries(env)["load_model_task"] == 1
    record = failure_records(env)["load_model_task"]
    assert re.fullmatch(r"QualityGateError: model v1 not promoted: accuracy 0\.9[0-8]\d < 0\.990", record["error"]), record["error"]
    assert (record["kind"], record["retryable"], record["try_number"]) == ("gate", False, 1)
    # the failure e-mail still goes out, with the same words
    alerts = [m for _, m in smtp_server.messages if " failed: " in m["Subject"]]
    headline = record["error"].removeprefix("QualityGateError: ").replace("<", "&lt;")
    assert len(alerts) == 1 and headline in body_text(alerts[0])


def test_a_transient_failure_of_an_operator_we_do_not_write_is_retried_and_recorded(airflow_home, pipelines):
    retries(pipelines, 1)
    port = free_port()  # no SMTP server there
    env = airflow_home(AIRFLOW_CONN_SMTP_DEFAULT=smtp_connection_uri("127.0.0.1", port))
    run_airflow(["dags", "test", "Airflow_Lab2"], env)
    assert task_states(env)["send_email"] == "failed" and tries(env)["send_email"] == 2
    record = failure_records(env)["send_email"]
    assert record["error"].startswith(f"SmtpDeliveryError: cannot send the report through the SMTP server at 127.0.0.1:{port}")
    assert (record["kind"], record["retryable"], record["try_number"], record["max_tries"]) == ("transient", True, 2, 1)
    assert set(failure_records(env)) == {"send_email"}  # the tasks that succeeded recorded nothing
