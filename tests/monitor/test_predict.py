"""POST /api/predict, /models and /api/models of the monitor: the champion of the monitored DAG, served and listed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from adclick_ops.cli import main
from adclick_ops.monitor import create_app

from tests.support.registry import (
    SEED,
    force_champion,
    hostile,
    model_rows,
    plant_version,
    rows_matrix,
    run_chain,
    set_training,
    train_two_versions,
    training_settings,
    weak_model,
)


@pytest.fixture
def trained(pipelines, tmp_path):
    return train_two_versions(pipelines, tmp_path / "model")


@pytest.fixture
def client(pipelines, trained):
    app = create_app({"TESTING": True, "PIPELINES": str(pipelines), "AIRFLOW_URL": "http://127.0.0.1:9", "PREDICT_REFRESH": 0.2})
    return app.test_client()


def test_predict_serves_the_champion(client, trained):
    rows = model_rows(5)
    response = client.post("/api/predict", json={"rows": rows})
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["dag_id"], body["model_version"]) == ("Airflow_Lab2", 2)
    expected = trained.load_model(2).predict_proba(rows_matrix(rows))[:, 1]
    assert [p["click_probability"] for p in body["predictions"]] == pytest.approx(expected.tolist())
    assert [p["clicked"] for p in body["predictions"]] == [int(p > 0.5) for p in expected]
    # the seed's model is right on these rows
    assert [p["clicked"] for p in body["predictions"]] == SEED["Clicked on Ad"].head(5).tolist()


def test_rollback_is_served_within_seconds_without_restart(client, trained, pipelines, capsys):
    assert client.post("/api/predict", json={"rows": model_rows(1)}).json["model_version"] == 2
    assert (
        main(
            [
                "models",
                "rollback",
                "--pipelines",
                str(pipelines),
                "--reason",
                "v2 misbehaves",
            ]
        )
        == 0
    )
    assert "version 1 is the champion now (was 2)" in capsys.readouterr().out
    deadline = time.monotonic() + 10
    version = None
    while time.monotonic() < deadline:
        version = client.post("/api/predict", json={"rows": model_rows(1)}).json["model_version"]
        if version == 1:
            break
        time.sleep(0.05)
    assert version == 1
    stump = trained.load_model(1).predict_proba(rows_matrix(model_rows(3)))[:, 1]
    body = client.post("/api/predict", json={"rows": model_rows(3)}).json
    assert [p["click_probability"] for p in body["predictions"]] == pytest.approx(stump.tolist())


def test_no_champion_yet_is_503(pipelines):
    app = create_app(
        {
            "TESTING": True,
            "PIPELINES": str(pipelines),
            "AIRFLOW_URL": "http://127.0.0.1:9",
        }
    )
    response = app.test_client().post("/api/predict", json={"rows": model_rows(1)})
    assert response.status_code == 503
    assert "no champion yet for Airflow_Lab2" in response.json["error"]


def _row(**change):
    row = dict(model_rows(1)[0])
    for k, v in change.items():
        if v is KeyError:
            row.pop(k)
        else:
            row[k] = v
    return row


@pytest.mark.parametrize(
    "rows,status,words",
    [
        ([_row(Age=KeyError)], 400, "rows[0]: missing field(s) 'Age'"),
        ([_row(), _row(colour=3)], 400, "rows[1]: unknown field(s) 'colour'"),
        (
            [_row(), _row(), _row(Age="35")],
            400,
            "rows[2]: field 'Age': expected a number, found '35'",
        ),
        (
            [_row(Male=True)],
            400,
            "rows[0]: field 'Male': expected a number, found True",
        ),
        ([_row(Age=None)], 400, "rows[0]: field 'Age': expected a number, found None"),
        ([_row(Age=[1])], 400, "rows[0]: field 'Age': expected a number"),
        ([[1, 2, 3, 4, 5]], 400, "rows[0]: expected an object"),
        ([], 400, "rows: the list is empty"),
        ([_row()] * 10_001, 400, "rows: 10,001 rows; at most 10,000 per request"),
    ],
)
def test_bad_rows_are_400_naming_row_and_field(client, rows, status, words):
    response = client.post("/api/predict", json={"rows": rows})
    assert response.status_code == status
    assert words in response.json["error"]


def test_non_finite_numbers_and_bad_bodies(client):
    raw = json.dumps({"rows": [_row(Age=1234.5)]}).replace("1234.5", "NaN")
    response = client.post("/api/predict", data=raw, content_type="application/json")
    assert response.status_code == 400 and "rows[0]: field 'Age': expected a finite number, found nan" in response.json["error"]
    for body, words in (
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", 'expected {"rows"'),
        (b'{"rows": [], "x": 1}', "unknown field(s) 'x'"),
        (b'{"rows": {"a": 1}}', "rows: expected a list"),
    ):
        response = client.post("/api/predict", data=body, content_type="application/json")
        assert response.status_code == 400 and words in response.json["error"], (
            body,
            response.json,
        )


def test_a_body_too_large_is_400_before_it_is_read(client):
    big = b'{"rows": [' + b" " * (5 * 1024 * 1024) + b"]}"
    response = client.post("/api/predict", data=big, content_type="application/json")
    assert response.status_code == 400 and "at most 4,194,304 bytes" in response.json["error"]


def test_ten_thousand_rows_are_scored(client):
    rows = model_rows(1000) * 10
    response = client.post("/api/predict", json={"rows": rows})
    assert response.status_code == 200 and len(response.json["predictions"]) == 10_000


def test_monitor_shows_versions_with_the_champion_marked(client, trained, pipelines):
    weak_model(pipelines)
    run_chain(training_settings(pipelines), "r1_again")  # the same stump: recorded against version 1
    set_training(pipelines, estimator={"name": "random_forest", "params": {"n_estimators": 2, "max_depth": 1, "random_state": 0}})
    run_chain(training_settings(pipelines), "r3")  # rejected
    page = client.get("/models")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="version-2" class="champion"' in html and "champion</strong>" in html
    assert 'id="version-3"' in html and "lost: roc_auc" in html and "for the champion, version 2, on the same" in html
    # each version's inputs: features, scalers, split and the estimator's parameters
    assert "scalers: minmax, standard" in html and "scalers: none" in html
    assert "features: Daily Time Spent on Site, Age, Area Income, Daily Internet Usage, Male" in html
    assert "split: test_size 0.3, random_state 42, stratify False" in html
    assert "params: n_estimators=2, max_depth=1, random_state=0" in html and "params: max_iter=1000" in html
    assert "trained again by: r1_again" in html
    api = client.get("/api/models").json
    assert api["champion"] == 2 and [v["decision"] for v in api["versions"]] == [
        "promoted",
        "promoted",
        "rejected",
    ]


def test_rollback_reaches_a_running_monitor_over_http(trained, pipelines, tmp_path):
    """`adclick-ops monitor` (gunicorn, its own processes) serves the champion; `adclick-ops models rollback`,
    run as a separate command, is served within seconds without a restart. A hostile champion promoted by hand
    (its card matches the file) is refused by promote, and by every worker if the pointer names it anyway: each
    answers 503 with the reason, never the version that is no longer champion, and does not die."""
    import os
    import subprocess
    import sys

    import psutil
    import requests

    from adclick_ops.net import free_port

    port = free_port()
    env = {**os.environ, "ADCLICK_OPS_PIPELINES": str(pipelines)}
    exe = [sys.executable, "-m", "adclick_ops.cli"]
    monitor = subprocess.Popen(
        [*exe, "monitor", "--port", str(port), "--airflow-url", "http://127.0.0.1:9"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/predict"

    def served_version() -> int | None:
        try:
            response = requests.post(url, json={"rows": model_rows(1)}, timeout=5)
        except requests.ConnectionError:
            return None
        assert response.status_code == 200, response.text
        return response.json()["model_version"]

    def wait_for(version: int, seconds: float) -> int | None:
        deadline = time.monotonic() + seconds
        seen = None
        while time.monotonic() < deadline:
            seen = served_version()
            if seen == version:
                break
            time.sleep(0.1)
        return seen

    try:
        assert wait_for(2, 60) == 2  # the monitor is up and serves the champion
        rollback = subprocess.run(
            [*exe, "models", "rollback", "--pipelines", str(pipelines), "--reason", "v2 misbehaves"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rollback.returncode == 0, rollback.stderr
        # both gunicorn workers re-read the champion pointer; a few requests reach each of them
        assert wait_for(1, 10) == 1
        # the other worker follows on its next look at the pointer: within seconds, every answer is version 1
        deadline, streak = time.monotonic() + 20, 0
        while streak < 10 and time.monotonic() < deadline:
            streak = streak + 1 if served_version() == 1 else 0
        assert streak == 10, "a worker kept serving the version rolled away from"
        workers = psutil.Process(monitor.pid).children()
        planted = plant_version(trained, hostile(trained.model_bytes(1)), like=1)
        promote = subprocess.run(
            [*exe, "models", "promote", str(planted), "--pipelines", str(pipelines), "--reason", "a file from elsewhere"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        # promote refuses a version whose file fails its checks: nothing changes, version 1 serves on
        assert promote.returncode == 1 and f"version {planted} cannot be the champion" in promote.stderr, promote.stderr
        assert all(served_version() == 1 for _ in range(10))
        # the pointer moved to it anyway (someone with write access): no worker serves version 1 any longer, each answers 503
        force_champion(trained, planted, "a file from elsewhere")
        time.sleep(1.5)  # past PREDICT_REFRESH: every worker has tried the new champion
        for _ in range(20):
            response = requests.post(url, json={"rows": model_rows(1)}, timeout=5)
            assert response.status_code == 503 and f"version {planted}): refused" in response.json()["error"], response.text
        assert workers and all(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers) and monitor.poll() is None
    finally:
        monitor.terminate()
        monitor.wait(30)


@pytest.mark.parametrize("damage", ["bytes changed", "hostile graph, card matching"])
def test_a_tampered_champion_is_503_with_the_reason_and_the_worker_serves_on(pipelines, trained, damage):
    registry = trained
    if damage == "bytes changed":
        path = Path(registry.location) / registry.card(2)["model"]["file"]
        path.write_bytes(path.read_bytes()[:-1] + b"\x00")
        reason = r"the model file of version 2 does not match its card's sha256"
    else:
        planted = plant_version(registry, hostile(registry.model_bytes(1), feature=5), like=1)
        force_champion(registry, planted, "a file from elsewhere")
        reason = r"version 3\): refused: node .*a split on feature 5, outside 0\.\.4"
    app = create_app({"TESTING": True, "PIPELINES": str(pipelines), "AIRFLOW_URL": "http://127.0.0.1:9", "PREDICT_REFRESH": 0})
    client = app.test_client()
    for _ in range(3):
        response = client.post("/api/predict", json={"rows": model_rows(2)})
        assert response.status_code == 503
        assert re.search(reason, response.json["error"]), response.json["error"]
    # the same worker serves again as soon as the registry is good again
    if damage == "bytes changed":
        registry.promote(1, "version 2 is damaged")
    else:
        registry.rollback("back to the last good one")
    response = client.post("/api/predict", json={"rows": model_rows(2)})
    assert response.status_code == 200 and response.json["model_version"] == (1 if damage == "bytes changed" else 2)


def _through_flask(app):
    """A client of Flask's own request handling, without the WSGI lane that answers POST /api/predict first."""
    from flask import Flask
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    return Client(lambda environ, start_response: Flask.wsgi_app(app, environ, start_response), Response)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"rows": model_rows(3)}).encode(),
        json.dumps({"rows": [_row(Age="35")]}).encode(),
        b"{not json",
        b'{"rows": [], "x": 1}',
        b"\xff\xfe{}",
    ],
    ids=["200", "400 row", "400 json", "400 field", "400 utf-8"],
)
def test_the_lane_answers_as_flask_would_byte_for_byte(pipelines, trained, body):
    """POST /api/predict is answered ahead of Flask: status, body and every header (security ones included)
    are those of the Flask view behind it."""
    app = create_app({"TESTING": True, "PIPELINES": str(pipelines), "AIRFLOW_URL": "http://127.0.0.1:9"})
    lane = app.test_client().post("/api/predict", data=body, content_type="application/json")
    flask = _through_flask(app).post("/api/predict", data=body, content_type="application/json")
    assert (lane.status, lane.get_data()) == (flask.status, flask.get_data())
    assert sorted(lane.headers.items()) == sorted(flask.headers.items())
    assert lane.headers["X-Content-Type-Options"] == "nosniff" and lane.headers["Cache-Control"] == "no-store"


def test_the_lane_answers_a_missing_champion_and_a_bug_as_flask_would(pipelines, monkeypatch, caplog):
    app = create_app({"TESTING": True, "PIPELINES": str(pipelines), "AIRFLOW_URL": "http://127.0.0.1:9"})
    body = json.dumps({"rows": model_rows(1)})
    lane = app.test_client().post("/api/predict", data=body, content_type="application/json")
    flask = _through_flask(app).post("/api/predict", data=body, content_type="application/json")
    assert lane.status_code == 503 and (lane.status, lane.get_data()) == (flask.status, flask.get_data())
    assert sorted(lane.headers.items()) == sorted(flask.headers.items())

    from adclick_ops.monitor import predict as predict_route

    def broken(*_):
        raise RuntimeError("a bug")

    monkeypatch.setattr(predict_route.ChampionSource, "champion", broken)
    lane = app.test_client().post("/api/predict", data=body, content_type="application/json")
    assert lane.status_code == 500 and lane.json == {"error": "internal error of the monitor", "status": 500}
    assert lane.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "monitor error on /api/predict" in caplog.text and "RuntimeError: a bug" in caplog.text


def test_other_methods_on_the_predict_path_are_flask_s(client):
    response = client.get("/api/predict")
    assert response.status_code == 405 and response.json == {"error": "Method Not Allowed", "status": 405}
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_huge_value_or_key_is_not_echoed_back(client):
    huge = "x" * (3 * 1024 * 1024)
    for rows, words in (
        ([_row(Age=huge)], "rows[0]: field 'Age': expected a number, found 'xxx"),
        ([_row(**{huge: 1})], "rows[0]: unknown field(s) 'xxx"),
        ([_row(**{f"k{i:06d}": 1 for i in range(50_000)})], "rows[0]: unknown field(s) 'k000000', 'k000001'"),
    ):
        response = client.post("/api/predict", json={"rows": rows})
        error = response.json["error"]
        assert response.status_code == 400 and words in error, error[:200]
        assert len(response.data) < 1000 and "…" in error
    # the top-level body is checked before any champion is read
    response = client.post("/api/predict", json={"rows": [], huge: 1})
    assert response.status_code == 400 and len(response.data) < 1000
    assert response.json["error"].startswith("request body: unknown field(s) 'xxx") and "…; expected only 'rows'" in response.json["error"]
