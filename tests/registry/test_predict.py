"""Predictions from the champion: POST /api/predict on the monitor, `adclick-ops predict`, `adclick-ops models`."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_support import (
    FEATURES,
    SEED,
    model_rows,
    rows_matrix,
    run_chain,
    settings_for,
    strong_model,
    weak_model,
)

from adclick_ops.cli import main
from adclick_ops.monitor import create_app
from adclick_ops.predict import PredictInputError, rows_to_matrix
from adclick_ops.registry import Registry


@pytest.fixture
def trained(pipelines, tmp_path):
    """Two versions: 1 (a stump, champion first), 2 (the seed's model, champion now)."""
    weak_model(pipelines)
    run_chain(settings_for(pipelines), "r1")
    strong_model(pipelines)
    run_chain(settings_for(pipelines), "r2")
    return Registry(str(tmp_path / "model"), "Airflow_Lab2")


@pytest.fixture
def client(pipelines, trained):
    app = create_app(
        {
            "TESTING": True,
            "PIPELINES": str(pipelines),
            "AIRFLOW_URL": "http://127.0.0.1:9",
            "PREDICT_REFRESH": 0.2,
        }
    )
    return app.test_client()


def test_predict_serves_the_champion(client, trained):
    rows = model_rows(5)
    response = client.post("/api/predict", json={"rows": rows})
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["dag_id"], body["model_version"]) == ("Airflow_Lab2", 2)
    expected = trained.load_model(2).predict_proba(rows_matrix(rows))[:, 1]
    assert [p["click_probability"] for p in body["predictions"]] == pytest.approx(
        expected.tolist()
    )
    assert [p["clicked"] for p in body["predictions"]] == [
        int(p > 0.5) for p in expected
    ]
    # the seed's model is right on these rows
    assert [p["clicked"] for p in body["predictions"]] == SEED["Clicked on Ad"].head(
        5
    ).tolist()


def test_rollback_is_served_within_seconds_without_restart(
    client, trained, pipelines, capsys
):
    assert (
        client.post("/api/predict", json={"rows": model_rows(1)}).json["model_version"]
        == 2
    )
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
        version = client.post("/api/predict", json={"rows": model_rows(1)}).json[
            "model_version"
        ]
        if version == 1:
            break
        time.sleep(0.05)
    assert version == 1
    stump = trained.load_model(1).predict_proba(rows_matrix(model_rows(3)))[:, 1]
    body = client.post("/api/predict", json={"rows": model_rows(3)}).json
    assert [p["click_probability"] for p in body["predictions"]] == pytest.approx(
        stump.tolist()
    )


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
    assert (
        response.status_code == 400
        and "rows[0]: field 'Age': expected a finite number, found nan"
        in response.json["error"]
    )
    for body, words in (
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", 'expected {"rows"'),
        (b'{"rows": [], "x": 1}', "unknown field(s) 'x'"),
        (b'{"rows": {"a": 1}}', "rows: expected a list"),
    ):
        response = client.post(
            "/api/predict", data=body, content_type="application/json"
        )
        assert response.status_code == 400 and words in response.json["error"], (
            body,
            response.json,
        )


def test_a_body_too_large_is_400_before_it_is_read(client):
    big = b'{"rows": [' + b" " * (5 * 1024 * 1024) + b"]}"
    response = client.post("/api/predict", data=big, content_type="application/json")
    assert (
        response.status_code == 400
        and "at most 4,194,304 bytes" in response.json["error"]
    )


def test_ten_thousand_rows_are_scored(client):
    rows = model_rows(1000) * 10
    response = client.post("/api/predict", json={"rows": rows})
    assert response.status_code == 200 and len(response.json["predictions"]) == 10_000


numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
bad_values = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([math.inf, -math.inf, math.nan]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_broken_row_is_refused_naming_its_index_and_field(data):
    """Rows of valid numbers, with one row broken in one of the ways a client can break it."""
    n = data.draw(st.integers(1, 20))
    rows = [{f: data.draw(numbers) for f in FEATURES} for _ in range(n)]
    matrix = rows_to_matrix(rows, tuple(FEATURES))
    assert matrix.shape == (n, len(FEATURES)) and np.isfinite(matrix).all()
    i = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(FEATURES))
    how = data.draw(st.sampled_from(["missing", "extra", "value"]))
    if how == "missing":
        del rows[i][field]
    elif how == "extra":
        rows[i][
            data.draw(
                st.text(min_size=1, max_size=8).filter(lambda k: k not in FEATURES)
            )
        ] = 1
    else:
        rows[i][field] = data.draw(bad_values)
    with pytest.raises(PredictInputError) as info:
        rows_to_matrix(rows, tuple(FEATURES))
    message = str(info.value)
    assert message.startswith(f"rows[{i}]: ")
    if how != "extra":
        assert repr(field) in message


# --- batch -----------------------------------------------------------------------------------------


def test_batch_predict_scores_a_file_like_the_api(
    client, trained, pipelines, tmp_path, capsys
):
    source = tmp_path / "in.csv"
    SEED[FEATURES].head(50).to_csv(source, index=False)
    target = tmp_path / "out.csv"
    assert (
        main(["predict", "--pipelines", str(pipelines), str(source), str(target)]) == 0
    )
    assert "50 row(s) scored by version 2 of Airflow_Lab2" in capsys.readouterr().out
    out = pd.read_csv(target)
    api = client.post("/api/predict", json={"rows": model_rows(50)}).json["predictions"]
    assert out["click_probability"].tolist() == pytest.approx(
        [p["click_probability"] for p in api]
    )
    assert out["clicked"].tolist() == [p["clicked"] for p in api]
    assert list(out.columns) == [*FEATURES, "click_probability", "clicked"]


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda f: f.drop(columns=["Age"]), "missing column(s) 'Age'"),
        (lambda f: f.assign(extra=1), "unknown column(s) 'extra'"),
        (
            lambda f: f.astype({"Age": object}).assign(Age=["x"] + [35] * (len(f) - 1)),
            "column 'Age' must be numeric; found 'x' at line 2",
        ),
    ],
)
def test_batch_predict_refuses_bad_files_naming_the_problem(
    trained, pipelines, tmp_path, capsys, make, words
):
    source = tmp_path / "in.csv"
    make(SEED[FEATURES].head(10)).to_csv(source, index=False)
    assert (
        main(
            [
                "predict",
                "--pipelines",
                str(pipelines),
                str(source),
                str(tmp_path / "out.csv"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith(f"error: {source}: ") and words in err
    assert not (tmp_path / "out.csv").exists()


def test_batch_predict_keeps_extra_columns_when_asked(trained, pipelines, tmp_path):
    source = tmp_path / "in.csv"
    SEED.head(20).to_csv(source, index=False)
    assert (
        main(
            [
                "predict",
                "--pipelines",
                str(pipelines),
                "--ignore-extra-columns",
                str(source),
                str(tmp_path / "out.csv"),
            ]
        )
        == 0
    )
    out = pd.read_csv(tmp_path / "out.csv")
    assert (
        list(out.columns) == [*SEED.columns, "click_probability", "clicked"]
        and len(out) == 20
    )


# --- models list/show, the monitor page ------------------------------------------------------------


def test_models_list_and_show(trained, pipelines, capsys):
    assert (
        main(["models", "list", "--pipelines", str(pipelines), "--format", "json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["champion"], r["decision"]) for r in rows] == [
        (1, False, "promoted"),
        (2, True, "promoted"),
    ]
    assert (
        main(["models", "list", "--pipelines", str(pipelines), "--dag", "Airflow_Lab2"])
        == 0
    )
    text = capsys.readouterr().out
    champion_line = next(
        line for line in text.splitlines() if line.startswith("* Airflow_Lab2")
    )
    assert champion_line.split()[2] == "2"
    assert main(["models", "show", "2", "--pipelines", str(pipelines)]) == 0
    card = json.loads(capsys.readouterr().out)
    assert (
        card["version"] == 2
        and card["champion"] is True
        and "text" not in card["pipeline"]
    )
    assert main(["models", "show", "5", "--pipelines", str(pipelines)]) == 1
    assert "no version 5" in capsys.readouterr().err
    assert (
        main(
            [
                "models",
                "list",
                "--pipelines",
                str(pipelines),
                "--dag",
                "Airflow_Lab2_Flask",
            ]
        )
        == 1
    )
    assert "does not train a model" in capsys.readouterr().err


def test_monitor_shows_versions_with_the_champion_marked(client, trained, pipelines):
    weak_model(pipelines)
    run_chain(settings_for(pipelines), "r3")  # rejected
    page = client.get("/models")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="version-2" class="champion"' in html and "champion</strong>" in html
    assert 'id="version-3"' in html and "does not beat the champion, version 2" in html
    api = client.get("/api/models").json
    assert api["champion"] == 2 and [v["decision"] for v in api["versions"]] == [
        "promoted",
        "promoted",
        "rejected",
    ]
