"""Every route of the monitor in each case of the latest run, through Flask's test client.

Airflow is the stub API server of tests/support/airflow_stub.py on a loopback port (or a port nothing listens on).
"""

from __future__ import annotations

import json
import re

import pytest
from markupsafe import escape as html_escape

from adclick_ops.monitor import create_app

from tests.monitor import PATIENT
from tests.support.airflow_stub import STATES, UI_URL, dag_run, metrics

ROUTES = ("/", "/success", "/running", "/failure", "/health", "/api/status", "/api/runs?limit=5")
PAGE_OF = {"success": "/success", "running": "/running", "failed": "/failure", "no_run": "/failure", "unreachable": "/failure"}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("route", ROUTES)
def test_no_route_fails_in_any_state(client_in, state, route):
    response = client_in(state).get(route)
    body = response.get_data(as_text=True)
    assert response.status_code in (200, 302, 503), (state, route, response.status_code)
    assert "Traceback" not in body and 'File "' not in body


@pytest.mark.parametrize(("state", "target"), PAGE_OF.items())
def test_index_redirects_by_latest_run(client_in, state, target):
    response = client_in(state).get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == target


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("page", ["/success", "/running", "/failure"])
def test_each_page_serves_its_case_or_says_it_has_nothing_to_show(client_in, state, page):
    response = client_in(state).get(page)
    html = response.get_data(as_text=True)
    if PAGE_OF[state] == page or (state == "unreachable" and page == "/running"):
        assert response.status_code == (503 if state == "unreachable" else 200)
        assert f'data-case="{state}"' in html and "data-nothing" not in html
    elif page == "/success":
        assert response.status_code == 302
        assert response.headers["Location"] == PAGE_OF[state]
    else:
        # no silent redirect: the page says it has nothing to show, and links to the latest run's page
        assert response.status_code == 200 and "Location" not in response.headers
        assert f'data-nothing="{page[1:]}"' in html
        assert f'<a href="{PAGE_OF[state]}" id="latest-link">' in html
        heading = "No run is running" if page == "/running" else "The latest run has not failed"
        assert f"<h1>{heading}</h1>" in html
        if state != "no_run":
            assert f"<code>manual__{state}_run</code>" in html
            assert {"success": "succeeded (2025-11-20 09:03:00 UTC)", "failed": "failed", "running": "is still running"}[state] in html
        else:
            assert "Airflow has no run of this DAG yet" in html
        # a run may start (or end) any moment
        assert ('<meta http-equiv="refresh"' in html) == (page == "/running" or state == "running")


@pytest.mark.parametrize("state", ["success", "failed", "gate", "running", "no_run", "unreachable"])
def test_the_banner_says_each_thing_once(client_in, state):
    from tests.support.airflow_stub import DATA_ERROR, GATE_ERROR

    html = client_in(state).get(PAGE_OF.get(state, "/failure")).get_data(as_text=True)
    start = html.index(">", html.index('id="case"')) + 1
    banner = html[start : html.index("</section>", start)]
    words = re.findall(r"[a-z]+", re.sub(r"<[^>]+>", " ", banner).lower())
    for phrase in ("still running", "not promoted", "failed", "no run", "refreshes", "unreachable"):
        text = " ".join(words)
        assert text.count(phrase) <= 1, (phrase, banner)
    if state == "failed":
        assert html_escape(DATA_ERROR) in banner and "data_preprocessing_task, try 2: " in banner
    if state == "gate":
        assert "accuracy 0.880 &lt; 0.900: version 7 was kept; the champion, version 6, is unchanged." in banner
        assert GATE_ERROR not in banner


def test_success_page_shows_the_run_its_metrics_and_chart(client_in):
    html = client_in("success").get("/success").get_data(as_text=True)
    assert 'id="run-id">manual__success_run<' in html
    assert 'id="run-state">success<' in html
    assert 'id="metric-accuracy">0.9612<' in html
    assert 'id="metric-roc_auc">0.9874<' in html
    assert "2025-11-20 09:00:00 UTC" in html  # start
    assert "2025-11-20 09:03:00 UTC" in html  # end
    assert "3 min 0 s" in html
    assert "97 <small>TN</small>" in html and "95 <small>TP</small>" in html
    assert f'href="{UI_URL}/dags/Airflow_Lab2/runs/manual__success_run"' in html
    assert '<svg id="metrics-chart"' in html
    # Both runs with metrics are on the chart, each as one point per series.
    assert html.count('class="dot dot-accuracy"') == 2
    assert html.count('class="dot dot-roc_auc"') == 2


@pytest.mark.parametrize(
    ("state", "code", "heading", "detail"),
    [
        ("failed", 200, "Latest run failed", "data_preprocessing_task, try 2: DataError: advertising.csv"),
        ("running", 200, "Latest run is still running", '<code class="task-id">data_preprocessing_task</code>'),
        ("no_run", 200, "No run yet", "Start one with <code>adclick-ops trigger --wait</code>, in the Airflow UI"),
        ("unreachable", 503, "Airflow is unreachable", "cannot connect to Airflow at http://127.0.0.1:"),
    ],
)
def test_each_page_says_which_case(client_in, state, code, heading, detail):
    response = client_in(state).get(PAGE_OF[state])
    html = response.get_data(as_text=True)
    assert response.status_code == code
    assert f'data-case="{state}"' in html
    assert f"<h1>{heading}</h1>" in html
    assert detail in html


def test_failed_page_shows_the_failed_run_and_the_chart_of_earlier_runs(client_in):
    html = client_in("failed").get("/failure").get_data(as_text=True)
    assert 'id="run-id">manual__failed_run<' in html
    assert "No metrics for this run: it stopped at data_preprocessing_task" in html
    assert '<svg id="metrics-chart"' in html  # the older run has metrics
    assert html.count('class="dot dot-accuracy"') == 1


def test_running_and_unreachable_pages_refresh_themselves(client_in):
    for state in ("running", "unreachable"):
        assert '<meta http-equiv="refresh"' in client_in(state).get(PAGE_OF[state]).get_data(as_text=True)
    assert '<meta http-equiv="refresh"' not in client_in("failed").get("/failure").get_data(as_text=True)


@pytest.mark.parametrize("state", STATES)
def test_health_is_ok_and_says_whether_airflow_answers(client_in, state):
    response = client_in(state).get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["service"] == "adclick-monitor"
    assert body["airflow"]["reachable"] is (state != "unreachable")


@pytest.mark.parametrize("state", STATES)
def test_api_status_reports_the_case(client_in, state):
    response = client_in(state).get("/api/status")
    body = response.get_json()
    assert response.status_code == (503 if state == "unreachable" else 200)
    assert body["case"] == state
    assert body["dag_id"] == "Airflow_Lab2"
    if state in ("no_run", "unreachable"):
        assert body["run"] is None
        assert body["reason"]
    else:
        assert body["run"]["run_id"] == f"manual__{state}_run"
        assert body["run"]["state"] == state


def test_api_status_of_a_success_carries_the_metrics(client_in):
    run = client_in("success").get("/api/status").get_json()["run"]
    assert run["metrics"] == {"accuracy": 0.9612, "precision": 0.9701, "recall": 0.9503, "f1": 0.9601, "roc_auc": 0.9874}
    assert run["confusion_matrix"] == [[97, 3], [5, 95]]
    assert run["n_test"] == 200
    assert run["duration_seconds"] == 180.0
    assert run["airflow_link"] == f"{UI_URL}/dags/Airflow_Lab2/runs/manual__success_run"


def test_api_runs_lists_recent_runs_newest_first(client_in):
    client = client_in("success")
    runs = client.get("/api/runs?limit=5").get_json()["runs"]
    assert [r["run_id"] for r in runs] == ["manual__success_run", "manual__older"]
    assert [r["metrics"]["accuracy"] for r in runs] == [0.9612, 0.91]
    assert [r["run_id"] for r in client.get("/api/runs?limit=1").get_json()["runs"]] == ["manual__success_run"]


def test_api_runs_in_the_other_cases(client_in):
    assert client_in("no_run").get("/api/runs").get_json()["runs"] == []
    failed = client_in("failed").get("/api/runs").get_json()["runs"]
    assert [(r["state"], r["metrics"]) for r in failed][0] == ("failed", None)
    response = client_in("unreachable").get("/api/runs")
    assert response.status_code == 503
    assert "cannot connect" in response.get_json()["reason"]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "2.5", ""])
def test_api_runs_rejects_a_bad_limit(client, limit):
    response = client.get(f"/api/runs?limit={limit}")
    assert response.status_code == 400
    assert "limit must be an integer from 1 to 100" in response.get_json()["error"]


def test_unknown_dag_is_shown_as_no_run(client, airflow):
    airflow.dag_ids = set()
    body = client.get("/api/status").get_json()
    assert body["case"] == "no_run"
    assert "does not know the DAG Airflow_Lab2" in body["reason"]
    assert client.get("/api/runs").get_json()["runs"] == []


def test_airflow_server_error_is_shown_as_unreachable(client, airflow):
    airflow.runs = [dag_run("manual__x", "success")]
    airflow.fail_status = 500
    response = client.get("/failure")
    assert response.status_code == 503
    assert "Airflow answered HTTP 500" in response.get_data(as_text=True)
    assert client.get("/health").get_json()["airflow"]["reachable"] is False


def test_refused_credentials_are_named(airflow):
    airflow.runs = [dag_run("manual__x", "success")]
    app = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_PASSWORD": "wrong", **PATIENT})
    body = app.test_client().get("/api/status").get_json()
    assert body["case"] == "unreachable"
    assert "ADCLICK_AIRFLOW_USER" in body["reason"] and "HTTP 401" in body["reason"]


def test_credentials_come_from_the_environment(airflow, monkeypatch):
    airflow.credentials = {"username": "monitor", "password": "s3cret"}
    airflow.runs = [dag_run("manual__x", "success")]
    monkeypatch.setenv("ADCLICK_AIRFLOW_USER", "monitor")
    monkeypatch.setenv("ADCLICK_AIRFLOW_PASSWORD", "s3cret")
    monkeypatch.setenv("ADCLICK_AIRFLOW_URL", airflow.url)
    assert create_app({"TESTING": True, **PATIENT}).test_client().get("/api/status").get_json()["case"] == "success"


def test_token_is_reused_and_renewed_after_a_401(airflow):
    airflow.runs = [dag_run("manual__x", "success")]
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "CACHE_TTL": 0}).test_client()
    for _ in range(3):
        assert client.get("/api/status").get_json()["case"] == "success"
    assert airflow.calls["token"] == 1
    airflow.revoke_tokens()  # as after an api-server restart
    assert client.get("/api/status").get_json()["case"] == "success"
    assert airflow.calls["token"] == 2


def test_metrics_stored_as_a_json_string_are_read(client, airflow):
    airflow.runs = [dag_run("manual__x", "success")]
    airflow.xcoms = {"manual__x": json.dumps(metrics("manual__x", accuracy=0.88))}
    assert client.get("/api/status").get_json()["run"]["metrics"]["accuracy"] == 0.88


def test_malformed_metrics_are_a_503_that_names_the_field(client, airflow):
    airflow.runs = [dag_run("manual__x", "success")]
    airflow.xcoms = {"manual__x": {**metrics("manual__x"), "accuracy": "high", "roc_auc": None, "confusion_matrix": [[1, 2]]}}
    response = client.get("/success")
    assert response.status_code == 503
    expected = "record unreadable: accuracy: input should be a valid number, found 'high'"
    assert f"No metrics for this run: {expected}".replace("'", "&#39;") in response.get_data(as_text=True)
    assert client.get("/api/status").get_json()["error"] == expected


def test_cache_lets_page_loads_share_one_airflow_call(airflow):
    airflow.runs = [dag_run("manual__x", "success")]
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "CACHE_TTL": 300, **PATIENT}).test_client()
    client.get("/success")  # reads the latest run and the chart's recent runs
    first = dict(airflow.calls)
    for route in ("/", "/success", "/api/status", "/api/status", "/health", "/health"):
        client.get(route)
    assert airflow.calls["runs"] == first["runs"] == 2
    assert airflow.calls["xcom"] == first["xcom"]
    assert airflow.calls["health"] == 2  # never cached: each /health asks Airflow's health endpoint itself


def test_without_cache_every_request_reaches_airflow(airflow):
    airflow.runs = [dag_run("manual__x", "success")]
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "CACHE_TTL": 0}).test_client()
    for _ in range(3):
        client.get("/api/status")
    assert airflow.calls["runs"] == 3
