"""adclick_ops.factory, in-process: validated models -> the dictionaries dag-factory renders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick_ops.config import load_catalog, project_root
from adclick_ops.config.models import Dag, DefaultArgs, Monitor, Training, TrainingJob
from adclick_ops.config.vocabulary import ESTIMATORS, SCALERS
from adclick_ops.factory import dag_config, dag_configs, training_job

from tests.support import PROJECT, edit_yaml

TRAINING_TASKS = ("load_data_task", "data_preprocessing_task", "separate_data_outputs_task", "build_save_model_task", "load_model_task")


@pytest.fixture
def shipped(monkeypatch) -> dict:
    monkeypatch.delenv("ADCLICK_OPS_HOME", raising=False)
    return dag_configs(load_catalog(PROJECT / "pipelines"))


def test_training_tasks_get_their_section_as_json_that_rebuilds_the_model(shipped):
    tasks = shipped["Airflow_Lab2"]["tasks"]
    job, *others = [TrainingJob.model_validate(tasks[t]["op_kwargs"]["settings"]) for t in TRAINING_TASKS]
    assert all(other == job for other in others)  # one section, the same for every training task
    assert job.dag_id == "Airflow_Lab2"
    assert job.split.test_size == 0.3 and job.scalers == ["minmax", "standard"]
    assert job.dataset == str(PROJECT / "dags" / "data" / "advertising.csv")
    assert job.model_dir == str(PROJECT / "model") and job.artifacts_root == str(PROJECT / "runs")


def test_the_monitor_task_gets_the_monitor_section(shipped):
    (task,) = shipped["Airflow_Lab2_Flask"]["tasks"].values()
    assert Monitor.model_validate(task["op_kwargs"]["settings"]) == Monitor(port=5555, dag_id="Airflow_Lab2")


def test_operators_get_their_sections_as_arguments(shipped):
    tasks = shipped["Airflow_Lab2"]["tasks"]
    assert tasks["send_email"]["to"] == ["ml-team@example.com"] and tasks["send_email"]["conn_id"] == "smtp_default"
    assert tasks["send_email"]["operator"] == "adclick_ops.operators.ReportEmailOperator"
    assert tasks["send_email"]["text_part"] is True  # ReportEmailOperator sends a plain-text part
    assert tasks["send_email"]["headline_metric"] == "accuracy" and tasks["send_email"]["monitor_url"] == "http://localhost:5555"
    trigger = tasks["my_trigger_task"]
    assert (trigger["trigger_dag_id"], trigger["wait_for_completion"], trigger["trigger_rule"]) == ("Airflow_Lab2_Flask", False, "all_done")
    assert tasks["data_preprocessing_task"]["dependencies"] == ["load_data_task"]


def test_the_providers_email_operator_sends_the_report_html_only(tmp_path):
    """The report's bodies are template files that ReportEmailOperator renders; the provider's operator, named in
    the YAML, gets the same task with the HTML part alone, sent by the provider's code."""
    import shutil

    shutil.copytree(PROJECT / "pipelines", tmp_path / "pipelines")
    edit_yaml(
        tmp_path / "pipelines" / "airflow_lab2.yaml",
        lambda d: d["Airflow_Lab2"]["tasks"]["send_email"].update(operator="airflow.providers.smtp.operators.smtp.EmailOperator"),
    )
    task = dag_configs(load_catalog(tmp_path / "pipelines"))["Airflow_Lab2"]["tasks"]["send_email"]
    assert task["operator"] == "adclick_ops.operators.ReportEmailOperator" and task["text_part"] is False


def test_default_args_merge_the_shared_file_and_turn_seconds_into_durations(shipped):
    args = shipped["Airflow_Lab2"]["default_args"]
    assert args["retry_delay"] == dt.timedelta(seconds=30) and args["retries"] == 1
    assert args["start_date"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    # every task records its failures; a failure also sends the e-mail (notify.email.on_failure)
    assert args["on_failure_callback"]["callback"] == "adclick_ops.failures.RecordingFailureNotifier"
    assert args["on_failure_callback"]["to"] == ["ml-team@example.com"]
    assert args["on_retry_callback"] == {"callback": "adclick_ops.failures.FailureRecorder"}
    assert "on_failure_callback" not in shipped["Airflow_Lab2_Flask"]["default_args"]


def test_a_dag_value_wins_over_the_shared_default():
    dag = Dag.model_validate(
        {"default_args": {"retries": 4}, "tasks": {"t": {"operator": "airflow.providers.standard.operators.empty.EmptyOperator"}}}
    )
    args = dag_config("D", dag, DefaultArgs(retries=2, retry_delay_sec=7), Path("/p"))["default_args"]
    assert (args["retries"], args["retry_delay"]) == (4, dt.timedelta(seconds=7))


def test_relative_paths_follow_the_project_root_override(tmp_path, monkeypatch, pipelines):
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(dataset="data/x.csv", model_dir="m"))
    monkeypatch.setenv("ADCLICK_OPS_HOME", str(tmp_path / "elsewhere"))
    catalog = load_catalog(pipelines)
    job = training_job("Airflow_Lab2", catalog.dags["Airflow_Lab2"], project_root(catalog))
    assert job.dataset == str(tmp_path / "elsewhere" / "data" / "x.csv") and job.model_dir == str(tmp_path / "elsewhere" / "m")


trainings = st.builds(
    Training,
    dataset=st.sampled_from(["dags/data/advertising.csv", "/abs/data.csv", "s3://bucket/data.csv"]),
    split=st.builds(dict, test_size=st.floats(0.01, 0.99), random_state=st.none() | st.integers(0, 2**32 - 1), stratify=st.booleans()),
    scalers=st.lists(st.sampled_from(SCALERS), unique=True),
    estimator=st.builds(dict, name=st.sampled_from(ESTIMATORS)),
    min_accuracy=st.none() | st.floats(0, 1),
)


@settings(max_examples=200, deadline=None)
@given(training=trainings)
def test_every_valid_training_section_reaches_the_tasks_unchanged_but_for_its_paths(training):
    dag = Dag(
        training=training,
        tasks={
            "t": {
                "operator": "airflow.providers.standard.operators.python.PythonOperator",
                "python_callable": "adclick_ops.tasks.load_data",
            }
        },
    )
    settings_json = dag_config("D", dag, DefaultArgs(), Path("/project"))["tasks"]["t"]["op_kwargs"]["settings"]
    job = TrainingJob.model_validate(settings_json)
    unchanged = {k: v for k, v in training.model_dump().items() if k not in Training.PATH_FIELDS}
    assert {k: v for k, v in job.model_dump().items() if k in unchanged} == unchanged
    for key in Training.PATH_FIELDS:
        value = getattr(training, key)
        assert getattr(job, key) == (value if "://" in value or value.startswith("/") else f"/project/{value}")
