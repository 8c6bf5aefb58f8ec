"""adclick_ops.record: the TrainingRecord a run reports, written once and read by everyone.

TrainingRecord.parse is the one reader: a valid record comes back whole, anything else is refused with
`record unreadable: <field>: <what>`, naming the first wrong field and what was found."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick_ops.config.models import TrainingJob
from adclick_ops.record import RecordUnreadable, TrainingRecord
from adclick_ops.registry.registry import Outcome
from adclick_ops.steps.promotion import Comparison

from tests.support import PROJECT, training_settings

VALID = TrainingRecord(
    run_id="manual__1",
    dag_id="Airflow_Lab2",
    accuracy=0.95,
    precision=0.9,
    recall=0.91,
    f1=0.905,
    roc_auc=0.98,
    confusion_matrix=[[97, 3], [5, 95]],
    n_test=200,
    estimator="logistic_regression",
    scalers=["minmax"],
    features=["Age"],
    model_path="/m/model.sav",
    model_version=4,
    promoted=False,
    decision_kind="lost",
    decision="not promoted: lost: roc_auc 0.9800 against 0.9811",
    reasons=["lost: roc_auc 0.9800 against 0.9811"],
    previous_champion_version=3,
    champion_version=3,
    previous_champion_metrics={"accuracy": 0.96, "roc_auc": 0.9811},
    holdout_metrics={"accuracy": 0.95, "roc_auc": 0.98},
    holdout_rows=212,
).as_xcom()

# A value of another type for each kind of field: each is refused, even in a lenient reading of JSON
# ("0.9" for a number, 4.0 for a version, 1 for a flag).
WRONG = {
    "float": ["0.9", [0.9], {"v": 0.9}, True],
    "int": [4.0, "4", [4], False],
    "str": [4, ["a"], {"a": "b"}, True],
    "bool": [1, "true", None, [True]],
    "list": ["minmax", {"a": 1}, 3],
    "dict": [[0.9], "accuracy", 1],
    "matrix": [[[1, 2], [3, "4"]], [1, 2], "[[1]]", [[1.5, 2]]],
}
KIND = {
    "run_id": "str",
    "dag_id": "str",
    "accuracy": "float",
    "precision": "float",
    "recall": "float",
    "f1": "float",
    "roc_auc": "float",
    "confusion_matrix": "matrix",
    "n_test": "int",
    "estimator": "str",
    "scalers": "list",
    "features": "list",
    "model_path": "str",
    "model_version": "int",
    "promoted": "bool",
    "decision_kind": "str",
    "decision": "str",
    "reasons": "list",
    "previous_champion_version": "int",
    "champion_version": "int",
    "previous_champion_metrics": "dict",
    "holdout_metrics": "dict",
    "holdout_rows": "int",
    "champion_file_error": "str",
}


def test_every_field_of_the_record_has_its_wrong_values_here():
    assert set(KIND) == set(TrainingRecord.model_fields)


def test_a_valid_record_is_read_whole():
    record = TrainingRecord.parse(VALID)
    assert record is not None and record.as_xcom() == VALID
    assert (record.model_version, record.decision_kind, record.champion_version) == (4, "lost", 3)


def test_no_value_is_no_record():
    assert TrainingRecord.parse(None) is None


@pytest.mark.parametrize("field,value", [(f, v) for f, kind in KIND.items() for v in WRONG[kind]])
def test_a_field_of_the_wrong_type_is_named_with_what_was_found(field, value):
    with pytest.raises(RecordUnreadable) as caught:
        TrainingRecord.parse(VALID | {field: value})
    message = str(caught.value)
    assert message.startswith(f"record unreadable: {field}"), message
    assert "found " in message and "\n" not in message


def test_the_one_required_field_missing_is_named():
    with pytest.raises(RecordUnreadable, match=r"^record unreadable: run_id: missing$"):
        TrainingRecord.parse({k: v for k, v in VALID.items() if k != "run_id"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -math.inf])
@pytest.mark.parametrize("where", ["accuracy", "previous_champion_metrics"])
def test_a_number_that_is_not_finite_is_named(value, where):
    record = VALID | ({where: value} if where == "accuracy" else {where: {"accuracy": 0.9, "roc_auc": value}})
    path = "accuracy" if where == "accuracy" else "previous_champion_metrics.roc_auc"
    with pytest.raises(RecordUnreadable, match=rf"^record unreadable: {path}: expected a finite number, found "):
        TrainingRecord.parse(record)


garbage = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=200),
    st.lists(st.integers() | st.text(max_size=5), max_size=5),
)


@settings(max_examples=60, deadline=None)
@given(value=garbage)
def test_garbage_in_the_record_s_place_is_refused_in_one_line(value):
    with pytest.raises(RecordUnreadable) as caught:
        TrainingRecord.parse(value)
    message = str(caught.value)
    assert message.startswith(f"record unreadable: record: expected an object of fields, found {type(value).__name__} ")
    assert len(message) < 200 and "\n" not in message
    assert TrainingRecord.read(value) is None


def test_fields_it_does_not_know_are_left_aside():
    # a record written by a later version of the package stays readable
    assert TrainingRecord.parse(VALID | {"added_later": [1, 2]}).as_xcom() == VALID


# --- how a run writes its record ------------------------------------------------------------

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
