"""adclick_ops.pipeline_watch: one line and one e-mail when a pipeline file breaks or heals, never one per parse."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest

from adclick_ops import lastgood
from adclick_ops.pipeline_watch import Change, PipelineWatch, _connection, send, tell

from tests.support import body_text
from tests.support.last_good import break_file, copy_pipelines, parse
from tests.support.pipeline_mistakes import LAB2


@pytest.fixture
def pipelines(tmp_path: Path) -> Path:
    return copy_pipelines(tmp_path)


def test_the_watch_says_and_mails_each_break_once_and_each_heal(pipelines, smtp_server):
    """What `adclick-ops run` prints and sends: once per distinct broken content, once when it heals, not once per look."""
    from adclick_ops.pipeline_watch import PipelineWatch, send

    env = smtp_server.connection_env()
    parse(pipelines)
    watch = PipelineWatch(pipelines)
    assert watch.check() == []
    text = (pipelines / LAB2).read_text()
    break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robsut]")
    (change,) = watch.check()
    assert change.kind == "broken" and change.recipients == ("ml-team@example.com",)
    assert "does not validate; " in change.line() and "'robsut'" in change.line() and lastgood.RUNS_MARKER in change.line()
    assert send(change, env)
    assert watch.check() == [] and PipelineWatch(pipelines).check() == []  # the same content, even after a restart
    break_file(pipelines / LAB2, "scalers: [robsut]", "scalers: [robsutt]")  # broken differently: once more
    (again,) = watch.check()
    assert again.kind == "broken" and again.sha256 != change.sha256
    (pipelines / LAB2).write_text(text)
    (healed,) = watch.check()
    assert healed.kind == "healed" and "validates again" in healed.line()
    assert send(healed, env)
    assert watch.check() == []
    subjects = [m["Subject"] for _, m in smtp_server.messages]
    assert subjects == ["[adclick-ops] airflow_lab2.yaml does not validate", "[adclick-ops] airflow_lab2.yaml validates again"]
    assert [r for r, _ in smtp_server.messages] == [["ml-team@example.com"]] * 2
    assert "'robsut'" in body_text(smtp_server.messages[0][1])


def test_the_watch_pipelines_command_mails_through_the_connection_of_the_environment(pipelines, smtp_server):
    """`adclick-ops watch-pipelines`, as the Compose stack's pipeline-watch service runs it."""
    import subprocess
    import sys

    parse(pipelines)
    break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robsut]")
    env = {**os.environ, **smtp_server.connection_env(), "ADCLICK_OPS_PIPELINES": str(pipelines)}
    command = [sys.executable, "-m", "adclick_ops.cli", "watch-pipelines", "--once"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"pipelines: {pipelines / LAB2} does not validate; " in result.stdout
    assert "pipelines: e-mail to ml-team@example.com: [adclick-ops] airflow_lab2.yaml does not validate" in result.stdout
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "does not validate" not in again.stdout  # told once, across restarts
    assert len(smtp_server.messages) == 1


def test_a_change_reads_as_one_line_a_subject_and_a_body():
    broken = Change(
        "broken", "pipelines/a.yaml", "ab" * 32, ("first error", "second", "third"), note="Airflow runs the last valid version."
    )
    assert broken.line() == "pipelines/a.yaml does not validate; first error (and 2 more). Airflow runs the last valid version."
    assert broken.subject() == "[adclick-ops] a.yaml does not validate"
    assert broken.body().startswith(f"pipelines/a.yaml does not validate (sha256 {'ab' * 32}):\n\nfirst error\nsecond\nthird\n")
    healed = Change("healed", "pipelines/a.yaml", "cd" * 32)
    assert healed.line() == f"pipelines/a.yaml validates again (sha256 {'cd' * 6}): its DAGs follow it"
    assert healed.subject() == "[adclick-ops] a.yaml validates again"


def test_the_connection_is_read_from_the_environment_as_airflow_reads_a_uri():
    password = secrets.token_hex(6) + "/"  # quoted in the URI, as a slash must be
    env = {
        "AIRFLOW_CONN_SMTP_OPS": "smtp://us%40er:"
        + quote(password, safe="")
        + "@mail.example.org:2525/?from_email=ops%40example.org&disable_ssl=true"
    }
    assert _connection("smtp_ops", env) == {
        "host": "mail.example.org",
        "port": 2525,
        "login": "us@er",
        "password": password,
        "from_email": "ops@example.org",
        "ssl": False,
        "starttls": True,
    }
    for bad in ({}, {"AIRFLOW_CONN_SMTP_OPS": '{"conn_type": "smtp"}'}):
        with pytest.raises(ValueError, match=r"no SMTP connection 'smtp_ops' in URI form in the environment \(AIRFLOW_CONN_SMTP_OPS\)"):
            _connection("smtp_ops", bad)


def test_a_change_without_recipients_is_not_sent():
    assert send(Change("broken", "a.yaml", "0" * 64), env={}) is False


def test_tell_says_what_it_could_not_send_and_goes_on(pipelines):
    parse(pipelines)
    watch = PipelineWatch(pipelines)
    assert watch.check() == []
    break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robsut]")
    said: list[str] = []
    tell(watch, env={}, say=said.append)  # no SMTP connection in this environment
    assert len(said) == 2 and said[0].startswith(f"pipelines: {pipelines / LAB2} does not validate; ")
    assert (
        said[1]
        == "pipelines: the e-mail could not be sent: no SMTP connection 'smtp_default' in URI form in the environment (AIRFLOW_CONN_SMTP_DEFAULT)"
    )


def test_tell_says_when_the_folder_itself_is_gone(tmp_path):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    watch = PipelineWatch(folder)
    folder.rmdir()
    said: list[str] = []
    tell(watch, env={}, say=said.append)
    assert said == [f"pipelines: {folder}: pipelines folder: not found"]
