"""The vocabulary in adclick_ops.config is the one the steps implement, the schema offers and the docs list."""

from __future__ import annotations

import typing

import numpy as np

from adclick_ops import notify
from adclick_ops.config import models
from adclick_ops.config.reference import render_reference
from adclick_ops.config.schema import pipeline_schema
from adclick_ops.config.vocabulary import (
    ESTIMATOR_PARAMS,
    ESTIMATORS,
    METRIC_LABELS,
    METRICS,
    METRICS_TASK_ID,
    SCALERS,
)
from adclick_ops.steps.model import ESTIMATOR_CLASSES, SCALER_CLASSES, build_pipeline, evaluate, make_estimator

from tests.support import PROJECT


def test_every_scaler_name_has_an_implementation_and_every_implementation_a_name():
    assert tuple(SCALER_CLASSES) == SCALERS


def test_every_estimator_name_has_an_implementation_and_every_implementation_a_name():
    assert tuple(ESTIMATOR_CLASSES) == ESTIMATORS == tuple(ESTIMATOR_PARAMS)


def test_allowed_estimator_parameters_are_real_parameters_of_the_class():
    for name, allowed in ESTIMATOR_PARAMS.items():
        real = set(make_estimator(name, {}).get_params())
        assert set(allowed) <= real, (name, sorted(set(allowed) - real))


def test_the_models_take_their_choices_from_the_vocabulary():
    scalers = typing.get_args(models.Training.model_fields["scalers"].annotation)[0]
    assert typing.get_args(scalers) == SCALERS
    assert typing.get_args(models.Estimator.model_fields["name"].annotation) == ESTIMATORS


def test_the_schema_and_the_reference_offer_the_same_choices():
    defs = pipeline_schema()["$defs"]
    assert tuple(defs["Training"]["properties"]["scalers"]["items"]["enum"]) == SCALERS
    assert tuple(defs["Estimator"]["properties"]["name"]["enum"]) == ESTIMATORS
    reference = render_reference()
    assert all(f"`{name}`" in reference for name in (*SCALERS, *ESTIMATORS))


def test_evaluation_returns_every_metric_and_labels_cover_them():
    assert tuple(METRIC_LABELS) == METRICS
    x, y = np.arange(8, dtype=float).reshape(-1, 1), np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = evaluate(build_pipeline([], "logistic_regression", {}).fit(x, y), x, y)
    assert [name for name in scores if name in METRIC_LABELS] == list(METRICS)


def test_the_report_shows_every_metric_from_the_metrics_task():
    from types import SimpleNamespace

    asked = []

    class TI:
        task_id = "send_email"

        def xcom_pull(self, task_ids):
            asked.append(task_ids)
            return {"run_id": "r", **{name: 0.25 + i / 10 for i, name in enumerate(METRICS)}}

    facts = notify.report_facts({"ti": TI(), "dag": SimpleNamespace(dag_id="d"), "run_id": "r", "dag_run": None})
    assert asked == [METRICS_TASK_ID]
    text, page = notify.render("report.txt", facts), notify.render("report.html", facts)
    for i, name in enumerate(METRICS):
        assert f"{METRIC_LABELS[name]:<11}{0.25 + i / 10:.4f}" in text
        assert f">{METRIC_LABELS[name]}</th>" in page and f">{0.25 + i / 10:.4f}</td>" in page


def test_the_shipped_pipeline_evaluates_in_the_task_the_report_reads():
    from adclick_ops.config import load_catalog

    dag = load_catalog(PROJECT / "pipelines").dags["Airflow_Lab2"]
    assert dag.tasks[METRICS_TASK_ID].python_callable == "adclick_ops.tasks.load_model"


def test_the_reference_describes_every_section_of_a_pipeline_file():
    """Each pydantic model a DAG is built from (and defaults.yaml) has its table in docs/configuration.md."""
    from pydantic import BaseModel

    from adclick_ops.config.reference import SECTIONS

    def nested(model: type[BaseModel]) -> set[type[BaseModel]]:
        found = {model}
        for field in model.model_fields.values():
            for candidate in (field.annotation, *typing.get_args(field.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel) and candidate not in found:
                    found |= nested(candidate)
        return found

    documented = {model for _, model in SECTIONS}
    assert nested(models.Dag) | {models.Defaults} <= documented, sorted(m.__name__ for m in nested(models.Dag) - documented)
