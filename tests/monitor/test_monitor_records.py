"""The routes that show runs (/, /success, /failure, /api/status, /api/runs) read load_model_task's record through
TrainingRecord.parse. Generated mutations of a valid record (a field removed, a value of any JSON type in a
field's place, garbage in the record's place): a record that still parses is shown; any other is a 503 whose
message names the field, never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops.monitor import create_app
from adclick_ops.record import RecordUnreadable, TrainingRecord

from tests.support.airflow_stub import UI_URL, metrics, set_state

FIELDS = sorted(TrainingRecord.model_fields)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated_records(draw) -> tuple[object, str | None]:
    """A record as load_model_task's XCom might hold it, and the field a refusal must name ("record": the whole)."""
    record = metrics("manual__success_run")
    how = draw(st.sampled_from(["drop", "replace", "garbage"]))
    if how == "garbage":
        return draw(json_values.filter(lambda v: not isinstance(v, dict) and v is not None)), "record"
    field = draw(st.sampled_from(FIELDS))
    if how == "drop":
        record.pop(field)
    else:
        record[field] = draw(json_values)
    return record, field


def expected_error(value: object) -> str | None:
    try:
        TrainingRecord.parse(value)
    except RecordUnreadable as exc:
        return str(exc)
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated_records(), stored_as_text=st.booleans())
def test_a_mutated_record_is_shown_or_named_never_a_500(airflow, case, stored_as_text):
    value, field = case
    airflow.reset()
    set_state(airflow, "success")
    airflow.xcoms["manual__success_run"] = json.dumps(value) if stored_as_text and isinstance(value, dict) else value
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, "CACHE_TTL": 0}).test_client()
    error = expected_error(value)

    index = client.get("/")
    assert index.status_code == 302 and index.headers["Location"] == "/success"
    status = client.get("/api/status")
    body = status.get_json()
    assert body["case"] == "success"
    page = client.get("/success")
    html = page.get_data(as_text=True)
    if error is None:
        assert status.status_code == 200 and page.status_code == 200
        assert body["run"]["record_error"] is None and "error" not in body
        assert 'id="record-error"' not in html
    else:
        assert error.startswith(f"record unreadable: {field}"), (field, error)
        assert status.status_code == 503 and body["error"] == body["run"]["record_error"] == error
        assert body["run"]["metrics"] is None and "model_version" not in body["run"]
        assert page.status_code == 503 and 'id="record-error"' in html and "record unreadable: " + field in html
    failure = client.get("/failure")
    assert failure.status_code == 200 and "The latest run has not failed" in failure.get_data(as_text=True)
    runs = client.get("/api/runs")
    assert runs.status_code == 200
    assert [r["record_error"] for r in runs.get_json()["runs"]] == [error, None]  # the older run's record is whole


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated_records())
def test_a_run_stopped_at_the_gate_with_a_mutated_record_is_named_on_the_failure_page(airflow, case):
    value, field = case
    airflow.reset()
    run_id = set_state(airflow, "gate")
    airflow.xcoms[run_id] = value
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, "CACHE_TTL": 0}).test_client()
    error = expected_error(value)
    assert client.get("/").headers["Location"] == "/failure"
    failure = client.get("/failure")
    status = client.get("/api/status")
    assert status.get_json()["case"] == "failed"
    assert failure.status_code == status.status_code == (200 if error is None else 503)
    if error is not None:
        assert status.get_json()["error"] == error and error.startswith(f"record unreadable: {field}")
        assert "record unreadable: " + field in failure.get_data(as_text=True)
    assert client.get("/success").status_code == 302


def test_a_missing_run_id_is_named(client, airflow):
    set_state(airflow, "success")
    del airflow.xcoms["manual__success_run"]["run_id"]
    body = client.get("/api/status")
    assert body.status_code == 503 and body.get_json()["error"] == "record unreadable: run_id: missing"


def test_a_plain_string_in_the_record_s_place_is_named(client, airflow):
    set_state(airflow, "success")
    airflow.xcoms["manual__success_run"] = "not a record"
    body = client.get("/api/status").get_json()
    assert body["error"] == "record unreadable: record: expected an object of fields, found str 'not a record'"


@pytest.mark.parametrize("matrix", [[[1]], [[]], [], [[1, 2]], [[1, 2], [3]], [[1, 2], [3, 4], [5, 6]]])
def test_a_confusion_matrix_that_is_not_two_by_two_is_left_out_and_said(airflow, matrix):
    set_state(airflow, "success")
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, "CACHE_TTL": 0}).test_client()
    html = client.get("/success").get_data(as_text=True)
    assert 'id="confusion-matrix"' in html and "97 <small>TN</small>" in html and "No confusion matrix" not in html
    airflow.xcoms["manual__success_run"] = metrics("manual__success_run", confusion_matrix=matrix)
    page = client.get("/success")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="confusion-matrix"' not in html and "No confusion matrix: the record holds one that is not two rows of two counts." in html
    assert 'id="metric-accuracy">0.9612<' in html  # the rest of the record is shown
    assert client.get("/api/status").get_json()["run"]["confusion_matrix"] == matrix


@pytest.mark.parametrize("accuracy", [-1e308, -1.8e307, 2.0, -0.5])
def test_a_score_outside_zero_to_one_in_a_recent_run_is_not_drawn_and_said(airflow, accuracy):
    set_state(airflow, "success")
    airflow.xcoms["manual__older"] = metrics("manual__older", accuracy=accuracy)
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, "CACHE_TTL": 0}).test_client()
    for route, code in (("/success", 200), ("/failure", 200), ("/running", 200), ("/api/status", 200), ("/api/runs", 200)):
        assert client.get(route).status_code == code, route
    html = client.get("/success").get_data(as_text=True)
    assert 'id="metrics-chart"' in html
    assert "Not drawn: 1 value outside [0, 1], which no score can be" in html
