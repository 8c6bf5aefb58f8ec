"""adclick_ops.render and the DAG file: which pipelines folder is rendered, and what a broken file does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adclick_ops.config import ConfigError
from adclick_ops.render import render

from tests.support import PROJECT, edit_yaml, parse_dags


def test_render_builds_every_dag_of_the_folder(pipelines):
    rendered: dict = {}
    assert render(rendered, pipelines) == ["Airflow_Lab2", "Airflow_Lab2_Flask"]
    assert [t.task_id for t in rendered["Airflow_Lab2"].topological_sort()][:2] == ["load_data_task", "data_preprocessing_task"]


def test_outside_a_dagbag_a_broken_file_is_raised_after_the_good_ones_are_built(pipelines):
    (pipelines / "broken.yaml").write_text("Broken:\n  tasks: {}\n")
    rendered: dict = {}
    with pytest.raises(ConfigError, match="broken.yaml"):
        render(rendered, pipelines)
    assert set(rendered) == {"Airflow_Lab2", "Airflow_Lab2_Flask"}


def copy_project(dest: Path) -> Path:
    for part in ("dags", "pipelines"):
        shutil.copytree(PROJECT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


# run from this checkout too: neither the working folder nor the installed package may decide
@pytest.mark.parametrize("from_checkout", [True, False], ids=["cwd is this checkout", "cwd is elsewhere"])
def test_a_copied_project_renders_its_own_pipelines(tmp_path, airflow_home, from_checkout):
    copy = copy_project(tmp_path / "copy")
    edit_yaml(copy / "pipelines" / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"]["split"].update(test_size=0.25))
    env = {k: v for k, v in airflow_home().items() if k not in ("ADCLICK_OPS_PIPELINES", "ADCLICK_OPS_HOME")}
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(copy / "dags")
    report = parse_dags(env, copy / "dags", cwd=PROJECT if from_checkout else tmp_path)
    assert report["import_errors"] == {}
    settings = report["dags"]["Airflow_Lab2"]["tasks"]["load_data_task"]["op_kwargs"]["settings"]
    assert settings["split"]["test_size"] == 0.25  # the copy's YAML, not this checkout's
    assert settings["dataset"] == str(copy / "dags" / "data" / "advertising.csv")  # relative to the copy


def test_the_environment_still_chooses_the_pipelines_folder(tmp_path, airflow_home, pipelines):
    copy = copy_project(tmp_path / "copy")
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"]["split"].update(test_size=0.4))
    report = parse_dags(airflow_home(), copy / "dags")  # ADCLICK_OPS_PIPELINES names the test's folder
    assert report["dags"]["Airflow_Lab2"]["tasks"]["load_data_task"]["op_kwargs"]["settings"]["split"]["test_size"] == 0.4
