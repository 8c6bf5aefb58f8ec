"""adclick_ops.embedded.home: what a home tells other commands, its running Airflow (running.json) and its airflow.cfg note."""

from __future__ import annotations

import configparser
import json
import os
import secrets
import subprocess
import sys

from adclick_ops.embedded.home import (
    STATE_FILE,
    forget_running,
    is_config_note,
    read_running,
    set_aside_config,
    write_config_note,
    write_running,
)
from adclick_ops.embedded.stack import airflow_env


def test_a_dead_run_command_is_not_taken_for_a_running_airflow(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    (tmp_path / "running.json").write_text(json.dumps({"pid": int(dead), "api_url": "http://localhost:1", "api_port": 1}))
    assert read_running(tmp_path) is None
    write_running(tmp_path, 8123, None, {"AIRFLOW_CONN_SMTP_DEFAULT": "smtp://127.0.0.1:1/"})
    found = read_running(tmp_path)
    assert found is not None and found.pid == os.getpid() and found.api_url == "http://localhost:8123"
    assert found.env == {"AIRFLOW_CONN_SMTP_DEFAULT": "smtp://127.0.0.1:1/"}


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


def test_running_json_that_is_damaged_or_of_another_process_is_no_running_airflow(tmp_path):
    for text in ("{", "[]", json.dumps({"pid": "x", "api_url": "u", "api_port": 1}), json.dumps({"pid": 0, "api_url": "u", "api_port": 1})):
        (tmp_path / STATE_FILE).write_text(text)
        assert read_running(tmp_path) is None, text
    (tmp_path / STATE_FILE).write_text(json.dumps({"pid": 1, "api_url": "http://localhost:1", "api_port": 1}))
    forget_running(tmp_path)  # pid 1 is not this process: its file stays
    assert read_running(tmp_path, check_alive=False).pid == 1
    write_running(tmp_path, 8080, "http://localhost:5555", {})
    forget_running(tmp_path)
    assert not (tmp_path / STATE_FILE).exists()


def test_the_note_keeps_no_secret_and_reads_back_with_percent_signs(tmp_path):
    fernet, password = secrets.token_urlsafe(16), secrets.token_urlsafe(12)  # values that cannot appear by chance
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": "/p/dags",
        "AIRFLOW__LOGGING__LOG_FORMAT": "%(asctime)s",
        "AIRFLOW__CORE__FERNET_KEY": fernet,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "x",
        "AIRFLOW_CONN_SMTP_DEFAULT": "smtp://mailer:" + password + "@h",
        "PATH": "/bin",
    }
    write_config_note(tmp_path, env)
    path = tmp_path / "airflow.cfg"
    assert is_config_note(path)
    text = path.read_text()
    assert fernet not in text and password not in text and "PATH" not in text and "sql_alchemy_conn_cmd" not in text
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser.get("logging", "log_format") == "%(asctime)s"


def test_an_airflow_cfg_that_is_not_the_note_is_never_written_over(tmp_path):
    path = tmp_path / "airflow.cfg"
    path.write_text("[core]\nmine = 1\n")
    write_config_note(tmp_path, {"AIRFLOW__CORE__DAGS_FOLDER": "/p/dags"})
    assert path.read_text() == "[core]\nmine = 1\n"
    (tmp_path / ".airflow-version").write_text("3.2.1 (stamped)\n")
    assert set_aside_config(tmp_path) == tmp_path / "airflow.cfg.3.2.1.bak"
    path.write_text("[core]\nagain = 1\n")
    assert set_aside_config(tmp_path) == tmp_path / "airflow.cfg.3.2.1.1.bak"  # the first one kept as it was
    assert (tmp_path / "airflow.cfg.3.2.1.bak").read_text() == "[core]\nmine = 1\n"
    assert set_aside_config(tmp_path) is None  # nothing left to keep
