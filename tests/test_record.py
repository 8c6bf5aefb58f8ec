"""adclick_ops.record: the TrainingRecord a run reports, written once and read by everyone."""

from __future__ import annotations

import json

from adclick_ops.config.models import TrainingJob
from adclick_ops.record import TrainingRecord
from adclick_ops.registry.registry import Outcome
from adclick_ops.steps.promotion import Comparison

from tests.support import PROJECT, training_settings

METRICS = {
    "accuracy": 0.9,
    "precision": 0.8,
    "recall": 0.7,
    "f1": 0.75,
    "roc_auc": 0.95,
    "confusion_matrix": [[5, 1], [2, 6]],
    "n_test": 14,
    "extra": 1,
}


def job() -> TrainingJob:
    return TrainingJob.model_validate(training_settings(PROJECT / "pipelines"))


def outcome(comparison: Comparison | None = None) -> Outcome:
    return Outcome(
        version=3,
        promoted=False,
        champion=2,
        previous_champion=2,
        summary="not promoted: lost: roc_auc 0.90 < 0.92",
        reasons=("lost",),
        kind="lost",
        comparison=comparison,
    )


def test_a_record_is_made_of_the_job_the_metrics_and_the_decision():
    comparison = Comparison(champion_version=2, rows=40, candidate={"roc_auc": 0.9, "accuracy": 0.8}, champion={"roc_auc": 0.92})
    record = TrainingRecord.of("manual__1", job(), METRICS, outcome(comparison), "/m/model.onnx")
    assert (record.dag_id, record.estimator, record.model_version, record.champion_version) == ("Airflow_Lab2", "logistic_regression", 3, 2)
    assert (record.accuracy, record.confusion_matrix, record.n_test) == (0.9, [[5, 1], [2, 6]], 14)
    assert record.decision_kind == "lost" and record.reasons == ["lost"]
    assert record.holdout_rows == 40
    assert record.holdout_metrics == {"accuracy": 0.8, "precision": None, "recall": None, "f1": None, "roc_auc": 0.9}
    assert record.previous_champion_metrics["roc_auc"] == 0.92
    assert record.features == job().features


def test_without_a_champion_to_compare_there_are_no_holdout_figures():
    record = TrainingRecord.of("r", job(), METRICS, outcome(Comparison(champion_version=2, problem="unreadable")), "/m")
    assert (record.holdout_metrics, record.previous_champion_metrics, record.holdout_rows) == (None, None, None)


def test_the_xcom_value_reads_back_as_the_same_record_through_json():
    record = TrainingRecord.of("manual__1", job(), METRICS, outcome(), "/m/model.onnx")
    assert TrainingRecord.read(json.loads(json.dumps(record.as_xcom()))) == record


def test_what_is_not_a_record_reads_as_none():
    assert TrainingRecord.read(None) is None
    assert TrainingRecord.read({"accuracy": 0.9}) is None  # a run of an earlier version: no run_id
    assert TrainingRecord.read({"run_id": 7}) is None
    assert TrainingRecord.read({"run_id": "r", "accuracy": "high"}) is None
    assert TrainingRecord.read({"run_id": "r", "later_field": 1}).run_id == "r"  # keys of later versions are ignored


def test_the_headline_says_version_decision_and_champion():
    record = TrainingRecord(run_id="r", model_version=3, decision="not promoted: lost", champion_version=2)
    assert record.headline == "version 3 trained; not promoted: lost; champion: version 2"
    assert TrainingRecord(run_id="r", model_version=1, decision="x").headline.endswith("champion: none")
