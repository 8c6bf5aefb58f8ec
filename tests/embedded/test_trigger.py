"""`adclick-ops trigger` and `adclick-ops airflow` without a running Airflow: finding the embedded one, refusing
what cannot be triggered (exit 2), and the home's airflow.cfg. The runs themselves are in test_run.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from adclick_ops.cli import build_parser, main
from adclick_ops.embedded.home import read_running, write_running
from adclick_ops.embedded.stack import airflow_env

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


def test_a_dead_run_command_is_not_taken_for_a_running_airflow(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    (tmp_path / "running.json").write_text(json.dumps({"pid": int(dead), "api_url": "http://localhost:1", "api_port": 1}))
    assert read_running(tmp_path) is None
    write_running(tmp_path, 8123, None, {"AIRFLOW_CONN_SMTP_DEFAULT": "smtp://127.0.0.1:1/"})
    found = read_running(tmp_path)
    assert found is not None and found.pid == os.getpid() and found.api_url == "http://localhost:8123"
    assert found.env == {"AIRFLOW_CONN_SMTP_DEFAULT": "smtp://127.0.0.1:1/"}


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


def test_the_home_airflow_cfg_shows_the_settings_in_effect_and_says_where_they_come_from(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "3")  # the caller's environment wins over embedded.env
    env = airflow_env(tmp_path / "home")
    cfg = (tmp_path / "home" / "airflow.cfg").read_text()
    assert cfg.startswith("# adclick-ops:") and "config/embedded.env" in cfg and "adclick-ops airflow" in cfg
    assert f"dags_folder = {env['AIRFLOW__CORE__DAGS_FOLDER']}\n" in cfg
    assert "parallelism = 3\n" in cfg
    # no secret is copied there
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
        assert env[key] not in cfg
    # Airflow reads it as it is (configparser, with its interpolation)
    import configparser

    parser = configparser.ConfigParser()
    parser.read_string(cfg)
    assert parser.get("core", "dags_folder") == env["AIRFLOW__CORE__DAGS_FOLDER"]


def test_the_note_is_not_set_aside_as_an_older_airflows_config(tmp_path, capsys):
    from adclick_ops.embedded.run import _retire_old_config

    home = tmp_path / "home"
    airflow_env(home)
    _retire_old_config(home, "3.3.2")
    assert (home / "airflow.cfg").exists() and not list(home.glob("airflow.cfg.*.bak"))
    # a file that an older Airflow wrote is still kept aside, and the note is not written over it in passing
    (home / "airflow.cfg").write_text("[core]\ndags_folder = /somewhere/dags\n")
    airflow_env(home)
    _retire_old_config(home, "3.3.2")
    assert (home / "airflow.cfg.3.1.bak").read_text().startswith("[core]")


@pytest.mark.parametrize("timeout", ["0", "-5", "nan"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(tmp_path, capsys, timeout):
    assert main(["trigger", "--airflow-home", str(tmp_path), "--wait", "--timeout", timeout]) == 2
    assert "--timeout must be a number of seconds above 0" in capsys.readouterr().err
