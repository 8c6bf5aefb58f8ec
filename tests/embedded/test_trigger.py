"""`adclick-ops trigger` and `adclick-ops airflow` without a running Airflow: finding the embedded one, refusing
what cannot be triggered (exit 2), and the home's airflow.cfg. The runs themselves are in test_run.py."""

from __future__ import annotations

import json

import pytest

from adclick_ops.cli import build_parser, main

from tests.support import free_port


def test_trigger_and_airflow_find_the_home_that_run_uses_by_default():
    parser = build_parser()
    home = parser.parse_args(["run"]).airflow_home
    assert parser.parse_args(["trigger"]).airflow_home == home
    assert parser.parse_args(["airflow", "dags", "list"]).airflow_home == home
    args = parser.parse_args(["airflow", "--airflow-home", "/x", "dags", "list-runs", "--state", "failed", "Airflow_Lab2"])
    assert args.airflow_home == "/x" and args.args == ["dags", "list-runs", "--state", "failed", "Airflow_Lab2"]
    assert parser.parse_args(["trigger"]).dag_id == "Airflow_Lab2"


@pytest.mark.parametrize(
    ("state", "said"),
    [
        (None, "no embedded Airflow is running for"),  # never started
        ({"pid": 0, "api_url": "http://localhost:1", "api_port": 1}, "no embedded Airflow is running for"),  # pid 0: never alive here
        ("{not json", "no embedded Airflow is running for"),
    ],
)
def test_trigger_without_a_running_embedded_airflow_exits_2_and_says_how_to_start_one(tmp_path, monkeypatch, capsys, state, said):
    monkeypatch.delenv("ADCLICK_AIRFLOW_URL", raising=False)
    if state is not None:
        (tmp_path / "running.json").write_text(state if isinstance(state, str) else json.dumps(state))
    assert main(["trigger", "--airflow-home", str(tmp_path), "--wait"]) == 2
    err = capsys.readouterr().err
    assert said in err and "make run" in err and "--airflow-url" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("conf", "said"),
    [
        ("[1, 2]", "--conf must be a JSON object"),
        ('"text"', "--conf must be a JSON object"),
        ("{'single': 1}", "--conf is not JSON"),
        ("", "--conf is not JSON"),
    ],
)
def test_a_conf_that_is_not_a_json_object_is_refused_before_anything_is_triggered(tmp_path, capsys, conf, said):
    assert main(["trigger", "--airflow-home", str(tmp_path), "--conf", conf]) == 2
    assert said in capsys.readouterr().err


def test_an_airflow_that_does_not_answer_cannot_be_triggered(capsys):
    port = free_port()  # nothing listens there
    assert main(["trigger", "--airflow-url", f"http://127.0.0.1:{port}"]) == 2
    assert f"cannot connect to Airflow at http://127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("timeout", ["0", "-5", "nan"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(tmp_path, capsys, timeout):
    assert main(["trigger", "--airflow-home", str(tmp_path), "--wait", "--timeout", timeout]) == 2
    assert "--timeout must be a number of seconds above 0" in capsys.readouterr().err
