"""The ML steps and task adapters, called directly on small data and on the shipped dataset."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adclick_ops import tasks
from adclick_ops.artifacts import RunFiles, load_model_file, write_bytes_atomic
from adclick_ops.config import load_catalog
from adclick_ops.factory import project_root, training_settings
from adclick_ops.steps.data import DataError, check_dataset, read_dataset
from adclick_ops.steps.model import build_pipeline, evaluate, make_preprocessor, split
from helpers import PROJECT, edit_yaml

FEATURES = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]
TARGET = "Clicked on Ad"


def small_frame(n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame[TARGET] = [i % 2 for i in range(n)]
    return frame


@pytest.mark.parametrize("mutate,words", [
    (lambda f: f.drop(columns=["Age"]), "missing column(s) 'Age'"),
    (lambda f: f.astype({"Age": object}).assign(**{"Age": ["x"] + list(f["Age"][1:])}), "column 'Age' must be numeric; found 'x' at line 2"),
    (lambda f: f.assign(**{"Area Income": [np.nan] + list(f["Area Income"][1:])}), "column 'Area Income' has 1 missing value(s), first at line 2"),
    (lambda f: f.assign(**{TARGET: 1}), "has a single class (1)"),
    (lambda f: f.assign(**{TARGET: 3}), "must hold 0/1 labels"),
    (lambda f: f.iloc[0:0], "has a header but no rows"),
])
def test_bad_data_is_refused_with_column_and_problem(mutate, words):
    with pytest.raises(DataError) as info:
        check_dataset(mutate(small_frame()), FEATURES, TARGET, "data.csv")
    assert str(info.value).startswith("data.csv: ")
    assert words in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="dataset file not found"):
        read_dataset(tmp_path / "none.csv", FEATURES, TARGET)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        read_dataset(tmp_path / "empty.csv", FEATURES, TARGET)


def test_shipped_dataset_is_the_real_one():
    frame = read_dataset(PROJECT / "dags" / "data" / "advertising.csv", FEATURES, TARGET)
    assert len(frame) == 1000 and int(frame[TARGET].sum()) == 500


@pytest.mark.parametrize("scalers,columns", [(["minmax", "standard"], 10), ([], 5), (["robust"], 5), (["maxabs", "robust", "standard"], 15)])
def test_scalers_side_by_side(scalers, columns):
    x = small_frame()[FEATURES].to_numpy()
    assert make_preprocessor(scalers).fit(x).transform(x).shape == (20, columns)


def test_scalers_are_fitted_on_the_training_rows_only():
    x = np.arange(10, dtype=float).reshape(-1, 1)
    scaled = make_preprocessor(["minmax"]).fit(x[:5]).transform(x[5:])
    assert scaled.min() > 1  # test rows lie beyond the training range


@pytest.mark.parametrize("name,cls", [("logistic_regression", "LogisticRegression"), ("random_forest", "RandomForestClassifier"),
                                      ("gradient_boosting", "GradientBoostingClassifier")])
def test_estimator_by_name(name, cls):
    model = build_pipeline(["standard"], name, {"random_state": 0})
    assert type(model.named_steps["model"]).__name__ == cls


def test_seed_split_and_scores():
    frame = read_dataset(PROJECT / "dags" / "data" / "advertising.csv", FEATURES, TARGET)
    x, y = frame[FEATURES].to_numpy(float), frame[TARGET].to_numpy(int)
    x_train, x_test, y_train, y_test = split(x, y, 0.3, 42, False)
    assert (len(y_train), len(y_test)) == (700, 300)
    metrics = evaluate(build_pipeline(["minmax", "standard"], "logistic_regression", {}).fit(x_train, y_train), x_test, y_test)
    assert metrics["accuracy"] == pytest.approx(0.970, abs=1e-9)
    assert metrics["roc_auc"] == pytest.approx(0.986, abs=5e-4)
    assert sum(map(sum, metrics["confusion_matrix"])) == 300


def settings_for(pipelines: Path) -> dict:
    catalog = load_catalog(pipelines)
    return training_settings("Airflow_Lab2", catalog.dags["Airflow_Lab2"], project_root(catalog))


def run_chain(settings: dict, run_id: str = "manual__t1") -> dict:
    out = {}
    for name in ("load_data", "preprocess", "separate_data_outputs", "build_save_model", "load_model"):
        out[name] = getattr(tasks, name)(settings=settings, run_id=run_id)
    return out


def test_task_chain_trains_promotes_and_evaluates(pipelines, tmp_path):
    out = run_chain(settings_for(pipelines))
    assert out["preprocess"] == {"train_rows": 700, "test_rows": 300, "scaled_columns": 10, "scalers": ["minmax", "standard"]}
    metrics = out["load_model"]
    assert metrics["accuracy"] >= 0.95
    model_path = Path(metrics["model_path"])
    assert model_path == tmp_path / "model" / "model.sav" and model_path.exists()
    # the saved file is the whole pipeline: it scores raw rows
    model = load_model_file(model_path, [model_path.parent])
    raw = pd.read_csv(PROJECT / "dags" / "data" / "advertising.csv")[FEATURES].to_numpy(float)[:3]
    assert model.predict(raw).shape == (3,)
    assert (tmp_path / "runs" / "Airflow_Lab2" / "manual__t1" / "metrics.json").exists()


@pytest.mark.parametrize("change,check", [
    (lambda t: t["split"].update(test_size=0.2), lambda out: out["preprocess"]["test_rows"] == 200),
    (lambda t: t.update(scalers=[]), lambda out: out["preprocess"]["scaled_columns"] == 5),
    (lambda t: t.update(scalers=["minmax", "standard", "robust"]), lambda out: out["preprocess"]["scaled_columns"] == 15),
    (lambda t: t["estimator"].update(name="random_forest", params={"n_estimators": 20, "random_state": 0}),
     lambda out: out["build_save_model"]["estimator"] == "random_forest" and out["load_model"]["estimator"] == "random_forest"),
    (lambda t: t["split"].update(stratify=True, test_size=0.5), lambda out: out["load_model"]["confusion_matrix"][0][0] + out["load_model"]["confusion_matrix"][0][1] == 250),
], ids=["test_size", "no scaling", "three scalers", "estimator", "stratify"])
def test_knobs_change_the_run(pipelines, change, check):
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: change(d["Airflow_Lab2"]["training"]))
    out = run_chain(settings_for(pipelines))
    assert check(out), out


def test_estimator_class_in_the_saved_model(pipelines, tmp_path):
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"]["estimator"].update(name="gradient_boosting", params={"n_estimators": 10}))
    run_chain(settings_for(pipelines))
    model = load_model_file(tmp_path / "model" / "model.sav", [tmp_path / "model"])
    assert type(model.named_steps["model"]).__name__ == "GradientBoostingClassifier"


def test_quality_gate_keeps_the_promoted_model(pipelines, tmp_path):
    run_chain(settings_for(pipelines), "run_a")
    promoted = tmp_path / "model" / "model.sav"
    before = promoted.read_bytes()
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(min_accuracy=0.99, scalers=[],
              estimator={"name": "random_forest", "params": {"n_estimators": 1, "max_depth": 1, "random_state": 0}}))
    with pytest.raises(tasks.QualityGateError, match=r"test accuracy 0\.\d+ is below training.min_accuracy 0.99"):
        run_chain(settings_for(pipelines), "run_b")
    assert promoted.read_bytes() == before


def test_two_runs_keep_separate_working_files(pipelines, tmp_path):
    settings = settings_for(pipelines)
    run_chain(settings, "manual__2024-01-01T00:00:00+00:00")
    run_chain(settings, "manual__2024-01-02T00:00:00+00:00")
    folders = sorted(p.name for p in (tmp_path / "runs" / "Airflow_Lab2").iterdir())
    assert folders == ["manual__2024-01-01T00_00_00_00_00", "manual__2024-01-02T00_00_00_00_00"]


def test_working_arrays_are_never_unpickled(tmp_path):
    run = RunFiles({"artifacts_root": str(tmp_path), "dag_id": "d", "model_file": "m", "model_dir": str(tmp_path)}, "r")
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}], dtype=object))
    write_bytes_atomic(run.path("evil.npz"), buffer.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):
        run.load_arrays("evil")


def test_models_load_only_from_allowed_folders(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "m.sav"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"not a model")
    with pytest.raises(PermissionError, match="models are loaded only from"):
        load_model_file(elsewhere, [tmp_path / "model"])


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "f.bin"
    write_bytes_atomic(target, b"old")
    write_bytes_atomic(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_missing_earlier_output_is_explained(pipelines):
    with pytest.raises(FileNotFoundError, match="working file of an earlier task is missing"):
        tasks.preprocess(settings=settings_for(pipelines), run_id="never_ran")


def test_artifacts_and_model_on_object_storage(pipelines):
    """A URI as artifacts_root/model_dir (here fsspec's in-memory store) works like a shared bucket."""
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(
        artifacts_root="memory://adclick-test/runs", model_dir="memory://adclick-test/model"))
    settings = settings_for(pipelines)
    assert settings["artifacts_root"] == "memory://adclick-test/runs"
    out = run_chain(settings, "manual__s3_like")
    assert out["load_model"]["accuracy"] >= 0.95
    from upath import UPath

    assert UPath("memory://adclick-test/model/model.sav").exists()
    assert UPath("memory://adclick-test/runs/Airflow_Lab2/manual__s3_like/metrics.json").exists()
