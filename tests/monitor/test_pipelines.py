"""The monitor shows broken pipeline files on every page, in /api/status and as a degraded /health.

The import error and the DAG docs the stub Airflow answers with are the ones the DAG file really
files and renders (tests/support/broken_pipeline.py), so that the monitor reads what Airflow stores.
"""

from __future__ import annotations

import pytest

from adclick_ops.airflow_api import AirflowClient, AirflowUnreachable
from adclick_ops.config.vocabulary import LAST_GOOD_DOCS_OPENING, LAST_GOOD_TAG
from adclick_ops.monitor import create_app
from adclick_ops.monitor.pipelines import _from_docs, parse_import_error, read_state

from tests.support.airflow_stub import UI_URL, set_state
from tests.support.broken_pipeline import LAB2, broken


@pytest.mark.parametrize("import_error", [True, False], ids=["import error filed", "between a bundle refresh and the next parse"])
def test_a_broken_file_shows_on_every_page_in_status_and_health(airflow, client, broken_render, import_error):
    broken(airflow, broken_render, import_error=import_error)
    page = client.get("/success").get_data(as_text=True)
    assert "The pipeline needs attention" in page and LAB2 in page
    assert "found &#39;robsut&#39;" in page  # the file's errors, escaped
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "The last valid version runs instead" in page and "sha256 " in page
    title = page.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title.startswith("Latest run succeeded, but ") and "does not validate" in title  # never "succeeded" alone
    # the page's heading points at the banner instead of saying it again
    assert (
        "<h1>Latest run succeeded, but see the pipeline problem above</h1>" in page and page.count("does not validate") == 2
    )  # title, banner
    for other in ("/models", "/no-such-page"):
        assert "The pipeline needs attention" in client.get(other).get_data(as_text=True), other

    status = client.get("/api/status").get_json()
    assert status["case"] == "success"
    pipelines = status["pipelines"]
    assert pipelines["degraded"] is True and pipelines["dag"]["last_good"] is True
    (entry,) = pipelines["broken_files"]
    assert entry["file"].endswith(LAB2) and entry["last_good_runs"] is True and "sha256 " in entry["runs_instead"]
    assert any("Airflow_Lab2.training.scalers[0]" in e and "'robsut'" in e for e in entry["errors"])

    health = client.get("/health")
    assert health.status_code == 200  # liveness
    body = health.get_json()
    assert body["status"] == "degraded" and any(LAB2 in p for p in body["problems"])


def test_fixed_the_banner_goes_and_health_is_ok(airflow, broken_render):
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, "CACHE_TTL": 0}).test_client()
    broken(airflow, broken_render)
    assert client.get("/health").get_json()["status"] == "degraded"
    airflow.import_errors, airflow.dag_details = [], {}  # the file fixed: parsed again, and its DAG too
    assert client.get("/health").get_json()["status"] == "ok"
    page = client.get("/success").get_data(as_text=True)
    assert "The pipeline needs attention" not in page
    assert page.split("<title>", 1)[1].startswith("Latest run succeeded ·")
    assert client.get("/api/status").get_json()["pipelines"]["broken_files"] == []


def test_a_stale_or_unknown_dag_is_degraded(airflow, client_in):
    client = client_in("success")
    airflow.dag_details = {"is_stale": True}
    body = client.get("/health").get_json()
    assert body["status"] == "degraded" and "stale" in body["problems"][0]
    assert "stale: no run starts" in client.get("/success").get_data(as_text=True)

    client = client_in("no_run")
    airflow.dag_ids = set()
    body = client.get("/api/status").get_json()
    assert body["pipelines"]["dag"]["found"] is False and body["pipelines"]["degraded"] is True


def test_a_file_without_a_last_valid_version_says_nothing_runs():
    trace = "ConfigError: invalid pipeline file\nnew.yaml:2: New.schedule: unknown schedule preset '@sometimes'"
    b = parse_import_error("../pipelines/new.yaml", trace)
    assert b.last_good_runs is False and b.errors == ("new.yaml:2: New.schedule: unknown schedule preset '@sometimes'",)
    assert "never validated" in b.note
    other = parse_import_error("dags/x.py", "Traceback (most recent call last):\n  File ...\nNameError: name 'y' is not defined")
    assert other.errors[-1] == "NameError: name 'y' is not defined" and other.last_good_runs is False


def test_many_errors_are_cut_and_each_line_is_bounded():
    trace = (
        "ConfigError: invalid pipeline file\n"
        + "\n".join(f"a.yaml:{i}: f: {'x' * 900}" for i in range(12))
        + "\nNo version of this file runs: why"
    )
    b = parse_import_error("a.yaml", trace)
    assert len(b.errors) == 6 and b.errors[-1] == "... and 7 more" and all(len(e) <= 500 for e in b.errors)
    assert b.note == "why"


@pytest.mark.timeout(30)
def test_long_docs_from_airflow_are_read_in_one_pass(airflow):
    # "** (" over and over, with no ")." to end the version: a regular expression with two lazy groups took
    # quadratic time on this (32 KB: seconds), and held a worker meanwhile.
    hostile = LAST_GOOD_DOCS_OPENING + "** (" * (1024 * 1024)  # 4 MiB
    assert _from_docs(hostile) is None
    well_formed = f"{LAST_GOOD_DOCS_OPENING}pipelines/a.yaml** (sha256 0123, recorded today). Fix it.\n\n```text\na.yaml:3: bad\n```\n"
    kept = _from_docs(well_formed + "** (" * (1024 * 1024))
    assert (kept.file, kept.runs_instead, kept.errors) == ("pipelines/a.yaml", "sha256 0123, recorded today", ("a.yaml:3: bad",))

    # through Airflow's answer, as large as the client takes, and the routes that read it
    airflow.dag_details = {"tags": [{"name": LAST_GOOD_TAG}], "doc_md": LAST_GOOD_DOCS_OPENING + "** (" * (900 * 1024)}
    state = read_state(AirflowClient(airflow.url, "airflow", "airflow"), "Airflow_Lab2")
    assert state.last_good is True and state.broken == ()
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, "CACHE_TTL": 0}).test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/api/status").get_json()["pipelines"]["dag"]["last_good"] is True


@pytest.mark.parametrize("tags", [5, True, "last-good", [["x"]], [{"name": []}], [{"name": {"a": 1}}], [None]])
def test_dag_details_tags_of_another_shape_are_an_airflow_problem_not_a_500(airflow, tags):
    set_state(airflow, "success")
    airflow.dag_details = {"tags": tags}
    client = create_app({"TESTING": True, "AIRFLOW_URL": airflow.url, "AIRFLOW_UI_URL": UI_URL, "CACHE_TTL": 0}).test_client()
    health = client.get("/health")
    assert health.status_code == 200 and health.get_json()["status"] == "ok"
    for route, code in (("/", 302), ("/success", 200), ("/failure", 200), ("/running", 200), ("/models", 200), ("/nope", 404)):
        assert client.get(route).status_code == code, route
    status = client.get("/api/status")
    assert status.status_code == 200 and status.get_json()["case"] == "success"
    assert status.get_json()["pipelines"] is None  # Airflow did not tell what the DAG's state is
    with pytest.raises(AirflowUnreachable, match="DAG details have an unexpected shape: tags"):
        read_state(AirflowClient(airflow.url, "airflow", "airflow"), "Airflow_Lab2")
