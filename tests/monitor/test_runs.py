"""What the monitor tells about a run that failed or is running: task, try, error, log link; estimator, scalers, version."""

from __future__ import annotations

import pytest

from tests.monitor import PATIENT
from tests.support.airflow_stub import DATA_ERROR, UI_URL, dag_run, failure_record, metrics, set_state, task_instance

LOG = f"{UI_URL}/dags/Airflow_Lab2/runs/manual__failed_run/tasks"


def test_failed_run_names_the_task_its_try_the_error_and_the_log(client_in):
    client = client_in("failed")
    failure = client.get("/api/status").get_json()["run"]["failure"]
    assert failure == {
        "task_id": "data_preprocessing_task",
        "state": "failed",
        "try_number": 2,
        "max_tries": 1,
        "error": DATA_ERROR,
        "kind": "data",
        "retryable": False,
        "log_link": f"{LOG}/data_preprocessing_task?try_number=2",
    }
    html = client.get("/failure").get_data(as_text=True)
    assert 'id="failed-task">data_preprocessing_task<' in html
    assert 'id="failed-try">2 ' in html
    assert "column &#39;Daily Time Spent on Site&#39; is missing" in html
    assert f'href="{LOG}/data_preprocessing_task?try_number=2" id="failed-log"' in html


def test_failed_run_without_a_failure_record_still_names_task_try_and_log(client_in):
    client = client_in("failed_no_record")
    body = client.get("/api/status").get_json()
    failure = body["run"]["failure"]
    assert (failure["task_id"], failure["try_number"], failure["error"], failure["kind"]) == ("data_preprocessing_task", 1, None, None)
    assert failure["log_link"] == f"{LOG}/data_preprocessing_task?try_number=1"
    assert body["reason"].startswith("data_preprocessing_task failed on try 1: no error was recorded")
    html = client.get("/failure").get_data(as_text=True)
    assert 'id="failed-error" class="muted">no error recorded' in html


def test_gate_rejection_reads_as_an_outcome(client_in):
    client = client_in("gate")
    body = client.get("/api/status").get_json()
    assert body["case"] == "failed"
    assert body["reason"] == "model v7 not promoted: accuracy 0.880 < 0.900"
    assert body["run"]["failure"]["kind"] == "gate"
    assert body["run"]["model_version"] == 7 and body["run"]["promoted"] is False
    html = client.get("/failure").get_data(as_text=True)
    assert "<h1>Latest run: model not promoted</h1>" in html
    assert "accuracy 0.880 &lt; 0.900: version 7 was kept; the champion, version 6, is unchanged." in html
    assert 'data-kind="gate"' in html


def test_running_run_lists_its_running_tasks(client_in):
    client = client_in("running")
    run = client.get("/api/status").get_json()["run"]
    assert [(t["task_id"], t["state"], t["try_number"]) for t in run["running_tasks"]] == [("data_preprocessing_task", "running", 1)]
    html = client.get("/running").get_data(as_text=True)
    assert 'id="running-tasks"' in html and '<code class="task-id">data_preprocessing_task</code>' in html


def test_the_first_failed_task_is_named_when_several_failed(client, airflow):
    from datetime import timedelta

    from tests.support.airflow_stub import T0

    airflow.runs = [dag_run("r", "failed")]
    airflow.task_instances["r"] = [
        task_instance("r", "send_email", "failed", ended=T0 + timedelta(minutes=5)),
        task_instance("r", "load_model_task", "failed", ended=T0 + timedelta(minutes=1)),
        task_instance("r", "my_trigger_task", "upstream_failed"),
    ]
    assert client.get("/api/status").get_json()["run"]["failure"]["task_id"] == "load_model_task"


@pytest.mark.parametrize(
    "record",
    [
        "not a dict",
        ["a", "list"],
        {"error": 42, "kind": "gate"},
        {"error": "X: y", "kind": "nonsense", "try_number": "two", "retryable": "yes"},
        {"task_id": "another_task", "error": "X: y", "kind": "data"},
        {"error": "E: " + "x" * 5000 + "\nsecond line", "kind": "error"},
        {"error": "", "kind": "data"},
    ],
)
def test_a_malformed_failure_record_is_read_for_what_it_holds(client, airflow, record):
    airflow.runs = [dag_run("r", "failed")]
    airflow.task_instances["r"] = [task_instance("r", "load_data_task", "failed", try_number=3)]
    airflow.task_xcoms[("r", "load_data_task", "failure")] = record
    response = client.get("/failure")
    assert response.status_code == 200
    failure = client.get("/api/status").get_json()["run"]["failure"]
    assert failure["task_id"] == "load_data_task" and failure["try_number"] == 3
    assert failure["kind"] in (None, "data", "error")
    assert failure["error"] is None or (len(failure["error"]) <= 500 and "\n" not in failure["error"])


def test_task_details_that_airflow_refuses_do_not_hide_the_run(client, airflow):
    airflow.runs = [dag_run("r", "failed")]
    airflow.task_instances["r"] = [task_instance("r", "load_data_task", "failed")]
    airflow.task_xcoms[("r", "load_data_task", "failure")] = failure_record("load_data_task", "E: x")
    original = airflow._tis
    airflow._tis = lambda request, dag_id, run_id: airflow._json({"task_instances": "nope"})
    try:
        body = client.get("/api/status").get_json()
    finally:
        airflow._tis = original
    assert body["case"] == "failed" and body["reason"] == "the latest run ended in state failed"
    assert "task details could not be read" in client.get("/failure").get_data(as_text=True)


def test_estimator_scalers_and_model_version_are_shown(client, airflow):
    airflow.runs = [dag_run("r", "success")]
    airflow.xcoms["r"] = {
        **metrics("r"),
        "estimator": "RandomForestClassifier",
        "scalers": ["StandardScaler", "MinMaxScaler"],
        "model_version": 4,
        "promoted": True,
        "champion_version": 4,
        "previous_champion_metrics": {"accuracy": 0.95, "roc_auc": None},
    }
    run = client.get("/api/status").get_json()["run"]
    assert (run["estimator"], run["scalers"], run["model_version"]) == ("RandomForestClassifier", ["StandardScaler", "MinMaxScaler"], 4)
    assert run["previous_champion_metrics"] == {"accuracy": 0.95, "roc_auc": None} and run["record_error"] is None
    html = client.get("/success").get_data(as_text=True)
    assert 'id="run-estimator">RandomForestClassifier<' in html
    assert 'id="run-scalers">StandardScaler, MinMaxScaler<' in html
    assert 'id="run-model-version">v4 · promoted to champion · champion v4<' in html
    assert '<td class="estimator">RandomForestClassifier</td>' in html
    assert "RandomForestClassifier · scalers: StandardScaler, MinMaxScaler · model v4</title>" in html  # chart tooltip


@pytest.mark.parametrize(
    "scalers,found",
    [("StandardScaler", "'StandardScaler'"), ([1, 2], "1"), ([None], "None"), ({"a": 1}, "{'a': 1}")],
)
def test_scalers_of_the_wrong_type_make_the_record_unreadable_and_say_so(client, airflow, scalers, found):
    airflow.runs = [dag_run("r", "success")]
    airflow.xcoms["r"] = {**metrics("r"), "scalers": scalers}
    status = client.get("/api/status")
    assert status.status_code == 503
    error = status.get_json()["run"]["record_error"]
    assert error.startswith("record unreadable: scalers") and error.endswith(f"found {found}"), error
    assert "scalers" not in status.get_json()["run"]
    page = client.get("/success")
    assert page.status_code == 503 and f"No metrics for this run: {error}".replace("'", "&#39;") in page.get_data(as_text=True)


def test_no_scalers_reads_none(client, airflow):
    set_state(airflow, "success")
    airflow.xcoms["manual__success_run"]["scalers"] = []
    assert 'id="run-scalers">none<' in client.get("/success").get_data(as_text=True)


HOSTILE = [
    "<script>alert(1)</script>",
    "{{ 7*7 }} {% raw %}",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "../../etc/passwd?x=1&y=2#z",
    "line one\r\nSet-Cookie: a=b",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_what_a_lying_airflow_or_hostile_data_puts_in_a_failure_is_shown_as_text(airflow, text):
    """The error comes from data (a column name, a path); a lying Airflow may put anything in run ids,
    task ids and the record. Pages show it as text, links keep the configured host and encode the rest."""
    from adclick_ops.monitor import create_app

    set_state(airflow, "failed")
    run_id = f"manual__{text}"
    task_id = f"load_data_task{text}"
    airflow.runs = [dag_run(run_id, "failed")]
    airflow.task_instances = {run_id: [task_instance(run_id, task_id, "failed", try_number=1)]}
    airflow.task_xcoms = {(run_id, task_id, "failure"): failure_record(task_id, f"DataError: {text}", kind="data")}
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, **PATIENT}).test_client()
    failure = client.get("/api/status").get_json()["run"]["failure"]
    if "/" in text:
        # Airflow allows no "/" in run ids; a path that names one cannot reach the run's task instances
        assert failure is None
    else:
        assert failure["error"] == f"DataError: {text.splitlines()[0]}" and failure["task_id"] == task_id  # one line
        link = failure["log_link"]
        assert link.startswith(f"{UI_URL}/dags/Airflow_Lab2/runs/") and "<" not in link and " " not in link and "#" not in link
    response = client.get("/failure")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for raw in ("<script>alert", "<img src=x", "onerror=alert(1)>", "Set-Cookie: a=b\n"):
        assert raw not in html
    if "{{" in text:
        assert "{{ 7*7 }}" in html  # shown, never evaluated
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("promoted", [True, False])
def test_the_success_page_says_whether_the_model_was_promoted_and_why(client, airflow, promoted):
    reason = (
        "promoted: roc_auc 0.9901 beats 0.9811 for the champion, version 3, on the same 212 held-out rows"
        if promoted
        else "not promoted: lost: roc_auc 0.9810 against 0.9811 for the champion, version 3, on the same 212 held-out rows"
    )
    airflow.runs = [dag_run("r", "success")]
    airflow.xcoms["r"] = {
        **metrics("r"),
        "model_version": 4,
        "promoted": promoted,
        "champion_version": 4 if promoted else 3,
        "decision": reason,
    }
    html = client.get("/success").get_data(as_text=True)
    heading = "<h1>Latest run succeeded</h1>" if promoted else "<h1>Latest run succeeded — model not promoted</h1>"
    assert heading in html
    assert f'<span id="run-decision">{reason}</span>' in html
    assert ("promoted to champion" if promoted else "v4 · not promoted · champion v3") in html


@pytest.mark.parametrize("kind", [[], {}, [1], {"gate": 1}])
def test_a_failure_kind_that_is_not_a_name_is_unreadable_not_a_500(client, airflow, kind):
    rid = set_state(airflow, "failed")
    airflow.task_xcoms[(rid, "data_preprocessing_task", "failure")]["kind"] = kind
    for route, code in (("/", 302), ("/success", 302), ("/failure", 200), ("/running", 200)):
        assert client.get(route).status_code == code, route
    response = client.get("/api/status")
    assert response.status_code == 200
    failure = response.get_json()["run"]["failure"]
    assert failure["kind"] is None and failure["error"] == DATA_ERROR  # the rest of the record is read, as for an unknown kind
