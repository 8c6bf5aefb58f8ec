"""Fixtures shared by the tests: copies of the pipeline files, Airflow homes, an SMTP server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import MailSink, copy_pipelines


@pytest.fixture
def pipelines(tmp_path: Path) -> Path:
    """A copy of pipelines/ whose training outputs go to the test's own folders (tests.support.copy_pipelines)."""
    return copy_pipelines(tmp_path)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """An Airflow metadata database migrated once; each test gets its own copy."""
    from adclick_ops.embedded.stack import airflow, airflow_env

    home = tmp_path_factory.mktemp("airflow-template")
    env = airflow_env(home)
    result = airflow(["db", "migrate"], env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return home / "airflow.db"


@pytest.fixture
def airflow_home(tmp_path: Path, migrated_db: Path, pipelines: Path):
    """An Airflow home with its own database, reading the test's copy of pipelines/."""
    from adclick_ops.embedded.stack import airflow_env

    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copy(migrated_db, home / "airflow.db")

    def env(**extra: str) -> dict[str, str]:
        return airflow_env(home, extra={"ADCLICK_OPS_PIPELINES": str(pipelines), "ADCLICK_OPS_HOME": str(pipelines.parent), **extra})

    return env


@pytest.fixture
def smtp_server():
    """A local SMTP server that keeps the messages it receives in `.messages`."""
    with MailSink() as server:
        yield server
