"""Two Airflow_Lab2 runs at once (`airflow dags test` with two logical dates): both succeed, each in its
own working folder, and the promoted model is whole: it loads, scores, and is one run's candidate."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adclick_ops.artifacts import load_model_file, safe_run_id

from tests.support import SEED_TASKS
from tests.support.hardening import PROJECT, count

pytestmark = pytest.mark.airflow

FEATURES = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]
TASKS = SEED_TASKS
DATES = ("2024-01-01", "2024-01-02")


def states_by_run(env: dict[str, str]) -> dict[str, dict[str, str]]:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as con:
        rows = con.execute("select run_id, task_id, state from task_instance where dag_id = 'Airflow_Lab2'").fetchall()
    out: dict[str, dict[str, str]] = {}
    for run_id, task_id, state in rows:
        out.setdefault(run_id, {})[task_id] = state
    return out


def test_two_runs_at_once_share_one_airflow_home_and_one_coherent_model(airflow_home, smtp_server, tmp_path):
    env = airflow_home(**smtp_server.connection_env())
    exe = shutil.which("airflow", path=env["PATH"])
    # Two fresh `dags test` processes would both insert the DAG's first row (UNIQUE constraint failed:
    # dag.dag_id). On a real home the DAG processor has written it long before; do that once here.
    sync = subprocess.run([exe, "dags", "reserialize"], env=env, capture_output=True, text=True, timeout=600)
    assert sync.returncode == 0, sync.stdout[-3000:] + sync.stderr[-3000:]
    started = time.monotonic()
    procs = [
        subprocess.Popen([exe, "dags", "test", "Airflow_Lab2", date], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for date in DATES
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    count("concurrent dags test runs", len(procs))
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-6000:]
    assert time.monotonic() - started < 900

    runs = states_by_run(env)
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as con:
        dates = sorted(r[0][:10] for r in con.execute("select logical_date from dag_run where dag_id = 'Airflow_Lab2'"))
    assert dates == list(DATES)
    assert len(runs) == 2, runs
    for run_id, states in runs.items():
        assert states == {t: "success" for t in TASKS}, (run_id, states)

    # Airflow 3 names a `dags test` run after the time it ran (manual__<now>): one folder per run id.
    folders = sorted((tmp_path / "runs" / "Airflow_Lab2").iterdir())
    assert sorted(f.name for f in folders) == sorted(safe_run_id(r) for r in runs)
    for folder in folders:
        assert {"dataset.npz", "split.npz", "train.npz", "test.npz", "model.sav", "metrics.json"} <= {p.name for p in folder.iterdir()}
        assert json.loads((folder / "metrics.json").read_text())["run_id"] in runs

    model_dir = tmp_path / "model"
    assert not list(model_dir.rglob("*.tmp"))  # no half-written temporary file left
    promoted = (model_dir / "model.sav").read_bytes()
    assert promoted in [(f / "model.sav").read_bytes() for f in folders]
    # both runs kept a version; the pointer names one, and model.sav is its copy
    from adclick_ops.registry import Registry

    registry = Registry(str(model_dir), "Airflow_Lab2")
    # the two runs train the same model: the one that decides second records its run against version 1, or,
    # when both looked before either had kept it, it is version 2, compared with version 1 (a tie keeps it)
    actions = [(e["action"], e["version"]) for e in registry.history()]
    assert (registry.versions(), actions) in (
        ([1], [("promoted", 1), ("retrained", 1)]),
        ([1, 2], [("promoted", 1), ("rejected", 2)]),
    ), (registry.versions(), actions)
    assert promoted == registry.model_bytes(registry.champion())
    model = load_model_file(model_dir / "model.sav", [model_dir])
    frame = pd.read_csv(PROJECT / "dags" / "data" / "advertising.csv")
    accuracy = float(np.mean(model.predict(frame[FEATURES].to_numpy(float)) == frame["Clicked on Ad"].to_numpy()))
    assert accuracy >= 0.9
    assert len(smtp_server.messages) == 2
