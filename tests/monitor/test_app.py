"""adclick_ops.monitor.app: the factory's settings (argument, then environment, then defaults), headers and errors."""

from __future__ import annotations

import pytest

from adclick_ops.monitor.app import DEFAULTS, SECURITY_HEADERS, create_app


def test_the_argument_wins_over_the_environment_which_wins_over_the_defaults(monkeypatch):
    monkeypatch.setenv("ADCLICK_MONITOR_DAG_ID", "from_env")
    monkeypatch.setenv("ADCLICK_MONITOR_CACHE_TTL", "7")
    app = create_app({"DAG_ID": "from_argument", "AIRFLOW_URL": "http://airflow:8080/", "AIRFLOW_USER": None})
    assert app.config["DAG_ID"] == "from_argument"
    assert app.config["CACHE_TTL"] == 7.0  # read from the environment, as a number
    assert app.config["AIRFLOW_USER"] == DEFAULTS["AIRFLOW_USER"]  # None in the argument: not given
    assert app.config["AIRFLOW_URL"] == "http://airflow:8080"
    assert app.config["AIRFLOW_UI_URL"] == "http://airflow:8080"  # the API's address unless told otherwise


def test_the_factory_reads_the_environment_when_it_is_called_not_at_import(monkeypatch):
    assert create_app().config["DAG_ID"] == DEFAULTS["DAG_ID"]
    monkeypatch.setenv("ADCLICK_MONITOR_DAG_ID", "later")
    assert create_app().config["DAG_ID"] == "later"


@pytest.mark.parametrize(
    "config,words",
    [
        ({"CACHE_TTL": "soon"}, "monitor setting CACHE_TTL must be a number of seconds, got 'soon'"),
        ({"AIRFLOW_WAIT": -1}, "monitor setting AIRFLOW_WAIT must be a number of seconds from 0, got -1.0"),
        ({"AIRFLOW_DEADLINE": "inf"}, "monitor setting AIRFLOW_DEADLINE must be a number of seconds from 0, got inf"),
    ],
)
def test_a_setting_that_is_not_a_number_of_seconds_is_refused_naming_it(config, words):
    with pytest.raises(ValueError) as raised:
        create_app(config)
    assert str(raised.value) == words


def test_no_debugger_whatever_the_caller_asks():
    app = create_app({"DEBUG": True})
    assert app.debug is False and app.config["DEBUG"] is False


@pytest.fixture
def client():
    app = create_app({"AIRFLOW_URL": "http://127.0.0.1:9"})

    def boom():
        raise RuntimeError("secret detail of the bug")

    app.add_url_rule("/boom", view_func=boom)
    app.add_url_rule("/api/boom", view_func=boom, endpoint="api_boom")
    return app.test_client()


def test_every_answer_carries_the_security_headers_and_no_store(client):
    for path in ("/no-such-page", "/api/no-such-thing", "/boom"):
        response = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)
        assert response.headers["Cache-Control"] == "no-store"


def test_errors_are_json_for_scripts_and_pages_for_people(client):
    api = client.get("/api/no-such-thing")
    assert (api.status_code, api.get_json()) == (404, {"error": "Not Found", "status": 404})
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html" and b"Not Found" in page.data


def test_a_bug_of_the_monitor_is_a_500_without_its_details(client, caplog):
    page = client.get("/boom")
    assert page.status_code == 500 and b"Internal error of the monitor" in page.data
    assert b"secret detail" not in page.data and b"Traceback" not in page.data
    api = client.get("/api/boom")
    assert api.get_json() == {"error": "internal error of the monitor", "status": 500}
    assert "secret detail of the bug" in caplog.text  # logged in full for the operator


def test_static_files_are_revalidated_on_each_use_not_kept_nor_refused(client):
    """The style sheet keeps its name from one version to the next: a browser must ask again each time (no-cache),
    and is answered 304 while it has not changed; an older version's style sheet is never used unasked."""
    for path in ("/static/monitor.css", "/static/favicon.svg"):
        with client.get(path) as first:
            assert first.status_code == 200 and first.headers.getlist("Cache-Control") == ["no-cache"], (path, first.headers)
            assert first.headers.get("ETag") and first.headers.get("Last-Modified"), (path, first.headers)
        with client.get(path, headers={"If-None-Match": first.headers["ETag"]}) as again:
            assert again.status_code == 304 and again.headers.getlist("Cache-Control") == ["no-cache"], (path, again.headers)
            for name, value in SECURITY_HEADERS.items():
                assert again.headers.get(name) == value, (path, name)
    assert client.get("/static/no-such-file.css").headers.getlist("Cache-Control") == ["no-store"]


def test_static_files_are_no_cache_whatever_the_caller_passes():
    app = create_app({"AIRFLOW_URL": "http://127.0.0.1:9", "SEND_FILE_MAX_AGE_DEFAULT": 3600})
    with app.test_client().get("/static/monitor.css") as response:
        assert response.headers.getlist("Cache-Control") == ["no-cache"], response.headers
