"""An Airflow home made by the Airflow 3.1 version of the project is taken over by `run` without user action.

The old home is made for real: Airflow 3.1.8 (tests/fixtures/airflow-3.1.8.lock) in a virtualenv of
its own migrates a database and writes its airflow.cfg, as `make run` did with that version.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support import PROJECT

pytestmark = pytest.mark.airflow

OLD_LOCK = PROJECT / "tests" / "fixtures" / "airflow-3.1.8.lock"


def _uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        pytest.fail("uv is needed to build the Airflow 3.1 virtualenv; `make` installs it into .venv")
    return uv


@pytest.fixture(scope="module")
def airflow31(tmp_path_factory) -> Path:
    """bin/ of a virtualenv with Airflow 3.1.8."""
    venv = tmp_path_factory.mktemp("airflow31") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = subprocess.run(
        [_uv(), "pip", "install", "--quiet", "-p", str(venv / "bin" / "python"), "-r", str(OLD_LOCK)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return venv / "bin"


def _alembic_head(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return con.execute("select version_num from alembic_version").fetchone()[0]


def test_run_migrates_a_31_home_and_sets_its_config_aside(airflow31, tmp_path, monkeypatch):
    from adclick_ops.embedded.run import _migrate
    from adclick_ops.embedded.stack import airflow, airflow_env

    home = tmp_path / ".airflow"
    old_env = airflow_env(home)
    (home / "airflow.cfg").unlink()  # the Airflow 3.1 version of this project wrote no note there
    old_env["PATH"] = f"{airflow31}:{old_env['PATH']}"
    made = airflow(["db", "migrate"], old_env, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    old_cfg = (home / "airflow.cfg").read_text()
    assert "max_num_rendered_ti_fields_per_task" in old_cfg  # an option Airflow 3.3 renamed
    old_head = _alembic_head(home / "airflow.db")

    _migrate(airflow_env(home), home)

    assert _alembic_head(home / "airflow.db") != old_head
    assert (home / "airflow.cfg.3.1.bak").read_text() == old_cfg  # kept, not lost
    assert (home / "airflow.cfg").read_text().startswith("# adclick-ops:")  # the note of the settings in effect
    assert (home / ".airflow-version").read_text().strip() == version("apache-airflow-core")
    # Airflow 3.3 reads the home without a word about renamed options, and the database is at its head.
    env = airflow_env(home)
    check = airflow(["db", "check-migrations", "--migration-wait-timeout", "1"], env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert "renamed" not in check.stdout + check.stderr
    assert "DeprecationWarning" not in check.stdout + check.stderr


def test_the_defaults_airflow_33_wrote_into_a_current_home_are_set_aside_not_lost(tmp_path):
    """Airflow 3.3 writes its defaults (dags_folder = <home>/dags, ...) when airflow.cfg is missing: not what runs."""
    from adclick_ops.embedded.run import _migrate

    home = tmp_path / ".airflow"
    home.mkdir()
    (home / "airflow.cfg").write_text("[core]\ndags_folder = /elsewhere/dags\n")
    (home / f"airflow.cfg.{version('apache-airflow-core')}.bak").write_text("an earlier one\n")
    (home / ".airflow-version").write_text(version("apache-airflow-core") + "\n")
    from adclick_ops.embedded.stack import airflow_env

    env = airflow_env(home)
    assert (home / "airflow.cfg").read_text() == "[core]\ndags_folder = /elsewhere/dags\n"  # not overwritten in passing
    _migrate(env, home)
    kept = home / f"airflow.cfg.{version('apache-airflow-core')}.1.bak"
    assert kept.read_text() == "[core]\ndags_folder = /elsewhere/dags\n"
    assert (home / f"airflow.cfg.{version('apache-airflow-core')}.bak").read_text() == "an earlier one\n"
    assert f"dags_folder = {env['AIRFLOW__CORE__DAGS_FOLDER']}\n" in (home / "airflow.cfg").read_text()


def test_a_home_of_another_33_patch_keeps_its_config_renamed_by_version(tmp_path):
    from adclick_ops.embedded.run import _retire_old_config

    home = tmp_path / ".airflow"
    home.mkdir()
    (home / "airflow.cfg").write_text("[core]\nx = 1\n")
    (home / ".airflow-version").write_text("3.3.0\n")
    _retire_old_config(home, "3.3.2")
    assert (home / "airflow.cfg.3.3.0.bak").read_text() == "[core]\nx = 1\n"
    assert not (home / "airflow.cfg").exists()
