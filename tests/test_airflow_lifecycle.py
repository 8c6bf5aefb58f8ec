"""The model lifecycle through real Airflow (`airflow dags test`): the champion is replaced only by a version that
beat it on the same held-out rows; two DAGs train at once, each keeping its own champion; champion moves check the
version; and the run's record, the e-mail and the console say what serves and why."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from adclick_ops.registry import Registry

from tests.support import body_text, edit_yaml, run_airflow

pytestmark = pytest.mark.airflow

FOREST = "Airflow_Lab2_Forest"


def record_of(tmp_path: Path, dag_id: str, newest: int = 1) -> list[dict]:
    files = sorted((tmp_path / "runs" / dag_id).glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in files[-newest:]]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "adclick_ops.cli", *args], env=env, capture_output=True, timeout=300, cwd=env["ADCLICK_OPS_HOME"]
    )


def test_the_lifecycle_through_airflow(airflow_home, smtp_server, pipelines, tmp_path):
    # a copied pipeline file with its DAG renamed: its champion's copy must be its own
    text = (pipelines / "airflow_lab2.yaml").read_text()
    (pipelines / "forest.yaml").write_text(text.replace("Airflow_Lab2:", f"{FOREST}:", 1))
    env = airflow_home(**smtp_server.connection_env())
    refused = cli("validate", str(pipelines), env=env)
    assert refused.returncode == 1 and b"both keep their champion in" in refused.stdout + refused.stderr, refused
    edit_yaml(
        pipelines / "forest.yaml",
        lambda d: d[FOREST]["training"].update(
            model_file="forest.onnx", estimator={"name": "random_forest", "params": {"n_estimators": 10, "random_state": 0}}
        ),
    )

    # 1. the first version of Airflow_Lab2
    first = run_airflow(["dags", "test", "Airflow_Lab2"], env)
    assert first.returncode == 0, first.stdout[-5000:]
    (one,) = record_of(tmp_path, "Airflow_Lab2")
    assert (one["model_version"], one["decision_kind"], one["champion_version"]) == (1, "first", 1)

    # 2. fewer features and another split: compared with version 1 on the same held-out rows, each through its own
    # features, it loses; the champion stays. Meanwhile the forest DAG trains at once, in its own process.
    edit_yaml(
        pipelines / "airflow_lab2.yaml",
        lambda d: d["Airflow_Lab2"]["training"].update(features=["Male"], split={"test_size": 0.4, "random_state": 1}),
    )
    exe = shutil.which("airflow", path=env["PATH"]) or "airflow"
    forest = subprocess.Popen([exe, "dags", "test", FOREST], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = run_airflow(["dags", "test", "Airflow_Lab2"], env)
    forest_out = forest.communicate(timeout=900)[0]
    assert second.returncode == 0, second.stdout[-5000:]
    assert forest.returncode == 0, forest_out[-5000:]
    (two,) = record_of(tmp_path, "Airflow_Lab2")
    assert (two["model_version"], two["promoted"], two["champion_version"], two["decision_kind"]) == (2, False, 1, "lost")
    assert two["decision"].startswith("not promoted: lost: roc_auc ") and "for the champion, version 1, on the same" in two["decision"]
    assert "incomparable" not in two["decision"] and two["holdout_rows"] > 100
    assert two["previous_champion_metrics"]["roc_auc"] > two["holdout_metrics"]["roc_auc"]

    # one champion per DAG: each copy is its own DAG's champion, each registry holds its own estimator only
    lab = Registry(str(tmp_path / "model"), "Airflow_Lab2", "model.sav")
    trees = Registry(str(tmp_path / "model"), FOREST, "forest.onnx")
    assert lab.champion() == 1 and trees.champion() == 1
    assert (tmp_path / "model" / "model.sav").read_bytes() == lab.model_bytes(1)
    assert (tmp_path / "model" / "forest.onnx").read_bytes() == trees.model_bytes(1)
    assert {c["model"]["estimator"] for c in lab.cards()} == {"logistic_regression"}
    assert {c["model"]["estimator"] for c in trees.cards()} == {"random_forest"}

    # the e-mail of the second run says it was not promoted, and why
    reports = [m for _, m in smtp_server.messages if "Airflow_Lab2 succeeded" in m["Subject"] and "v2" in m["Subject"]]
    assert reports, [m["Subject"] for _, m in smtp_server.messages]
    assert "v2 not promoted" in reports[-1]["Subject"] and two["decision"] in body_text(reports[-1])

    # 3. champion moves that hold: version 2's file fails its checks, so promote refuses it and nothing moves
    path = Path(lab.location) / lab.card(2)["model"]["file"]
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    p = ["--pipelines", str(pipelines), "--dag", "Airflow_Lab2"]
    refused = cli("models", "promote", "2", "--reason", "try", *p, env=env)
    assert refused.returncode == 1 and b"version 2 cannot be the champion" in refused.stderr and b"sha256" in refused.stderr
    assert refused.stderr.count(b"\n") == 1 and lab.champion() == 1
    checked = cli("models", "check", *p, env=env)
    assert checked.returncode == 1 and b"the model file of version 2 fails its checks" in checked.stdout
    path.write_bytes(good)
    assert cli("models", "promote", "2", "--reason", "by hand", *p, env=env).returncode == 0
    assert (tmp_path / "model" / "model.sav").read_bytes() == lab.model_bytes(2)

    # predict with the champion through a pipe: the predictions on stdout, the input untouched
    rows = tmp_path / "rows.csv"
    pd.read_csv(tmp_path / "dags" / "data" / "advertising.csv").head(4).to_csv(rows, index=False)
    before = rows.read_bytes()
    scored = cli("predict", *p, "--ignore-extra-columns", str(rows), "-", env=env)
    assert scored.returncode == 0, scored.stderr
    out = pd.read_csv(io.BytesIO(scored.stdout))
    assert list(out.columns)[-2:] == ["click_probability", "clicked"] and len(out) == 4 and rows.read_bytes() == before
    assert b"scored by version 2" in scored.stderr

    # 4. the same pipeline again: an identical model, recorded against version 2, which serves on
    third = run_airflow(["dags", "test", "Airflow_Lab2"], env)
    assert third.returncode == 0, third.stdout[-5000:]
    (three,) = record_of(tmp_path, "Airflow_Lab2")
    assert (three["model_version"], three["decision_kind"], three["champion_version"]) == (2, "identical", 2)
    assert lab.versions() == [1, 2] and lab.history()[-1]["action"] == "retrained"
