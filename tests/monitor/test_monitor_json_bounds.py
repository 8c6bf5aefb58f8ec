"""Every JSON the monitor reads is bounded: a request outside the bounds gets 400, an answer of Airflow
outside them 503 with the reason, and no generated document gets a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops import jsonio
from adclick_ops.monitor import create_app

from tests.support.airflow_stub import UI_URL, set_state


def deep(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def hostile_documents(non_finite: bool = True) -> st.SearchStrategy[bytes]:
    """Documents outside the bounds, each in a form a client or an upstream could send.

    non_finite: also NaN, Infinity and 1e309; a request holding them is refused by the champion's
    row check (naming the row and field, tests/monitor/test_predict.py), so only with a champion.
    """
    depth = st.integers(jsonio.MAX_DEPTH + 1, 50_000)
    digits = st.integers(jsonio.MAX_NUMBER_CHARS + 1, 5000)
    return st.one_of(
        depth.map(lambda d: ('{"rows": ' + deep(d) + "}").encode()),
        depth.map(lambda d: ('{"rows": [{"Age": ' + deep(d) + "}]}").encode()),
        depth.map(lambda d: ('{"dag_runs": [' + '{"a":' * d + "1" + "}" * d + "]}").encode()),
        digits.map(lambda n: ('{"rows": [{"Age": 1' + "0" * n + "}]}").encode()),
        st.sampled_from([b'{"rows": [1,]}', b"\xff\xfe{}", b"", b'{"rows": [{"Age": 1}]'])
        | (
            st.integers(309, 100_000).map(lambda e: ('{"rows": [{"Age": 1e' + str(e) + "}]}").encode())
            | st.sampled_from([b'{"rows": NaN}', b'{"rows": [{"Age": -Infinity}]}'])
            if non_finite
            else st.nothing()
        ),
    )


@pytest.fixture
def app_on(airflow):
    def build(**config):
        return create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, "CACHE_TTL": 0, **config})

    return build


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=hostile_documents(non_finite=False))
def test_a_request_outside_the_bounds_is_a_400_that_says_why(app_on, body):
    response = app_on().test_client().post("/api/predict", data=body, content_type="application/json")
    assert response.status_code == 400, response.data[:300]
    reason = response.get_json()["error"]
    assert reason.startswith("request body: ")
    assert any(word in reason for word in ("nested more than", "a number of", "not valid JSON", "not UTF-8")), reason


def test_the_issue_s_request_cases_are_400(app_on):
    client = app_on().test_client()
    age = client.post("/api/predict", data=json.dumps({"rows": [{"Age": 10**400}]}), content_type="application/json")
    assert age.status_code == 400 and "a number of 401 characters" in age.get_json()["error"]
    body = ('{"rows": ' + deep(50_000) + "}").encode()
    assert len(body) == 100_011  # about 100 KB nested 50,000 deep
    nested = client.post("/api/predict", data=body, content_type="application/json")
    assert nested.status_code == 400 and "nested more than 16 levels deep" in nested.get_json()["error"]
    for digits in (101, 400, 5000):
        long = client.post("/api/predict", data='{"rows": [{"Age": 1' + "0" * (digits - 1) + "}]}", content_type="application/json")
        assert long.status_code == 400 and f"a number of {digits} characters" in long.get_json()["error"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=hostile_documents(), endpoint=st.sampled_from(["runs", "tis", "xcom"]), state=st.sampled_from(["success", "failed"]))
def test_an_answer_of_airflow_outside_the_bounds_is_never_a_500(airflow, app_on, document, endpoint, state):
    airflow.reset()
    set_state(airflow, state)
    airflow.raw = {endpoint: document}
    client = app_on().test_client()
    for route in ("/api/runs", "/failure", "/success"):
        response = client.get(route)
        assert response.status_code in (200, 302, 503), (route, response.status_code, response.data[:300])
    status = client.get("/api/status")
    body = status.get_json()
    if endpoint == "runs":
        # the list of runs is the answer everything stands on: 503 with the reason
        assert status.status_code == 503 and body["case"] == "unreachable"
        assert "list of runs" in body["reason"]  # cannot be used (too deep, a number too long...), or has no runs in it
    elif endpoint == "tis" and state == "failed":
        # the run is known to have failed; why could not be read, and the page says so
        assert body["case"] == "failed"
        assert body["run"]["details_note"].startswith("the task details could not be read: ")


def test_a_deeply_nested_failure_record_is_explained_not_a_500(airflow, app_on):
    run_id = set_state(airflow, "failed")
    record = next(key for key in airflow.task_xcoms if key[0] == run_id)
    airflow.raw = {}
    # the failure XCom's value nested 50,000 deep (written by hand: json.dumps cannot write it)
    airflow.task_xcoms[record] = "placeholder"
    client = app_on().test_client()
    original = airflow._xcom

    def deep_xcom(request, **args):
        response = original(request, **args)
        if args.get("key") == "failure":
            response.set_data(('{"key": "failure", "value": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}").encode())
        return response

    airflow._xcom = deep_xcom
    try:
        for route in ("/api/status", "/failure"):
            response = client.get(route)
            assert response.status_code in (200, 503), (route, response.status_code)
        body = client.get("/api/status").get_json()
        assert body["case"] == "failed"
        assert "nested more than 64 levels deep" in body["run"]["details_note"]
        assert "nested more than 64 levels deep" in client.get("/failure").get_data(as_text=True)
    finally:
        del airflow._xcom
