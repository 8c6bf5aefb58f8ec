"""adclick_ops.tasks: the training callables in order, as Airflow calls them, on the shipped dataset."""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adclick_ops import tasks
from adclick_ops.artifacts import RunFiles, load_model_file
from adclick_ops.config.models import CALLABLES, TrainingJob
from adclick_ops.registry import Registry
from adclick_ops.registry.serialization import ops_of
from adclick_ops.steps.errors import DataError
from adclick_ops.steps.model import fit_preprocessing, split

from tests.support import PROJECT, edit_yaml, training_settings

FEATURES = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]
CHAIN = ("load_data", "preprocess", "separate_data_outputs", "build_save_model", "load_model")


def run_chain(settings: dict, run_id: str = "manual__t1") -> dict:
    return {name: getattr(tasks, name)(settings=settings, run_id=run_id) for name in CHAIN}


def run_files(settings: dict, run_id: str) -> RunFiles:
    job = TrainingJob.model_validate(settings)
    return RunFiles(job.artifacts_root, job.dag_id, run_id, model_dir=job.model_dir, model_file=job.model_file)


def test_every_allowed_callable_is_a_task_function():
    for path in CALLABLES:
        module, _, name = path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), path


def test_task_chain_trains_promotes_and_evaluates(pipelines, tmp_path):
    out = run_chain(training_settings(pipelines))
    held = out["load_data"]["held_out"]
    assert 150 <= held <= 250  # the held-out rows (a share of 0.2, by each row's hash) are never trained on
    trained = 1000 - held
    assert out["preprocess"] == {
        "train_rows": trained - math.ceil(0.3 * trained),
        "test_rows": math.ceil(0.3 * trained),
        "scaled_columns": 10,
        "scalers": ["minmax", "standard"],
    }
    metrics = out["load_model"]
    assert metrics["accuracy"] > 0.93 and metrics["n_test"] == math.ceil(0.3 * trained)
    model_path = Path(metrics["model_path"])
    assert model_path == tmp_path / "model" / "model.sav" and model_path.exists()
    # the saved file is the whole pipeline: it scores raw rows
    model = load_model_file(model_path, [model_path.parent])
    raw = pd.read_csv(PROJECT / "dags" / "data" / "advertising.csv")[FEATURES].to_numpy(float)[:3]
    assert model.predict(raw).shape == (3,)
    assert (tmp_path / "runs" / "Airflow_Lab2" / "manual__t1" / "metrics.json").exists()


def test_preprocessing_task_hands_on_the_scalers_fitted_on_the_training_rows(pipelines):
    settings = training_settings(pipelines)
    tasks.load_data(settings=settings, run_id="r")
    tasks.preprocess(settings=settings, run_id="r")
    run = run_files(settings, "r")
    data = run.load_arrays("dataset")
    x_train = split(data["x"], data["y"], test_size=0.3, random_state=42, stratify=False)[0]
    expected = fit_preprocessing(x_train, ["minmax", "standard"])
    restored = run.load_preprocessing(["minmax", "standard"])
    np.testing.assert_array_equal(restored.transform(data["x"]), expected.transform(data["x"]))


@pytest.mark.parametrize(
    "change,task,field,expected",
    [
        pytest.param({"split": {"test_size": 0.5, "random_state": 42}}, "preprocess", "test_rows", "half", id="test_size"),
        pytest.param({"scalers": []}, "preprocess", "scaled_columns", 5, id="no scaling"),
        pytest.param({"scalers": ["minmax", "standard", "robust"]}, "preprocess", "scaled_columns", 15, id="three scalers"),
        pytest.param(
            {"estimator": {"name": "random_forest", "params": {"n_estimators": 20, "random_state": 0}}},
            "build_save_model",
            "estimator",
            "random_forest",
            id="estimator",
        ),
    ],
)
def test_knobs_change_the_run(pipelines, change, task, field, expected):
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(change))
    out = run_chain(training_settings(pipelines))
    if expected == "half":  # of the rows that are not held out
        expected = math.ceil((1000 - out["load_data"]["held_out"]) / 2)
    assert out[task][field] == expected, out


def test_stratify_keeps_the_class_shares(pipelines):
    edit_yaml(
        pipelines / "airflow_lab2.yaml",
        lambda d: d["Airflow_Lab2"]["training"].update(split={"stratify": True, "test_size": 0.5, "random_state": 42}),
    )
    out = run_chain(training_settings(pipelines))
    negatives = int((run_files(training_settings(pipelines), "manual__t1").load_arrays("dataset")["y"] == 0).sum())
    assert abs(sum(out["load_model"]["confusion_matrix"][0]) - negatives / 2) <= 0.5  # half of the negatives trained on


def test_estimator_class_in_the_saved_model(pipelines, tmp_path):
    edit_yaml(
        pipelines / "airflow_lab2.yaml",
        lambda d: d["Airflow_Lab2"]["training"].update(estimator={"name": "gradient_boosting", "params": {"n_estimators": 10}}),
    )
    run_chain(training_settings(pipelines))
    champion = tmp_path / "model" / "model.sav"
    load_model_file(champion, [tmp_path / "model"])  # checked and scored by onnxruntime
    assert ("ai.onnx.ml", "TreeEnsembleClassifier") in ops_of(champion.read_bytes())
    card = Registry.for_job(TrainingJob.model_validate(training_settings(pipelines))).card(1)
    assert card["model"]["estimator"] == "gradient_boosting"
    # the card says how to call the file: opset, input and outputs
    onnx = card["model"]["onnx"]
    assert onnx["opset"][""] == 21 and onnx["producer"].startswith("skl2onnx ")
    assert onnx["inputs"] == [{"name": "features", "type": "tensor(double)", "shape": [None, 5], "columns": FEATURES}]
    assert [(o["name"], o["type"], o["shape"]) for o in onnx["outputs"]] == [
        ("label", "tensor(int64)", [None]),
        ("probabilities", "tensor(float)", [None, 2]),
    ]


def test_quality_gate_keeps_the_promoted_model(pipelines, tmp_path):
    run_chain(training_settings(pipelines), "run_a")
    promoted = tmp_path / "model" / "model.sav"
    before = promoted.read_bytes()
    weak = {
        "min_accuracy": 0.99,
        "scalers": [],
        "estimator": {"name": "random_forest", "params": {"n_estimators": 1, "max_depth": 1, "random_state": 0}},
    }
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(weak))
    with pytest.raises(tasks.QualityGateError, match=r"test accuracy 0\.\d+ is below training.min_accuracy 0.99"):
        run_chain(training_settings(pipelines), "run_b")
    assert promoted.read_bytes() == before


def test_a_folder_as_dataset_fails_load_data_naming_it(pipelines, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(dataset=str(folder)))
    with pytest.raises(DataError, match=rf"^{folder}: is a folder, not a CSV file"):
        tasks.load_data(settings=training_settings(pipelines), run_id="folder")


def test_two_runs_keep_separate_working_files(pipelines, tmp_path):
    settings = training_settings(pipelines)
    run_chain(settings, "manual__2024-01-01T00:00:00+00:00")
    run_chain(settings, "manual__2024-01-02T00:00:00+00:00")
    folders = sorted(p.name for p in (tmp_path / "runs" / "Airflow_Lab2").iterdir())
    assert folders == ["manual__2024-01-01T00_00_00_00_00", "manual__2024-01-02T00_00_00_00_00"]


def test_missing_earlier_output_is_explained(pipelines):
    with pytest.raises(FileNotFoundError, match="working file of an earlier task is missing"):
        tasks.preprocess(settings=training_settings(pipelines), run_id="never_ran")


def test_settings_of_another_shape_are_refused_by_name(pipelines):
    settings = training_settings(pipelines)
    settings["test_size"] = settings["split"].pop("test_size")  # a renamed field, as an old DAG would send it
    with pytest.raises(ValueError, match="test_size"):
        tasks.load_data(settings=settings, run_id="r")


def test_artifacts_and_model_on_object_storage(pipelines):
    """A URI as artifacts_root/model_dir (here fsspec's in-memory store) works like a shared bucket."""
    edit_yaml(
        pipelines / "airflow_lab2.yaml",
        lambda d: d["Airflow_Lab2"]["training"].update(
            artifacts_root="memory://adclick-test/runs", model_dir="memory://adclick-test/model"
        ),
    )
    settings = training_settings(pipelines)
    assert settings["artifacts_root"] == "memory://adclick-test/runs"
    out = run_chain(settings, "manual__s3_like")
    assert out["load_model"]["accuracy"] >= 0.95
    from upath import UPath

    assert UPath("memory://adclick-test/model/model.sav").exists()
    assert UPath("memory://adclick-test/runs/Airflow_Lab2/manual__s3_like/metrics.json").exists()


def update_training(pipelines: Path, **change) -> None:
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(change))


def test_a_model_with_other_features_scalers_and_split_is_compared_on_the_same_held_out_rows(pipelines):
    """A user who trims the features gets a weaker model: it is scored against the champion, each through its
    own inputs, on the rows neither trained on, and it loses; the champion stays."""
    first = run_chain(training_settings(pipelines), "run_a")
    assert first["load_model"]["decision_kind"] == "first" and first["load_model"]["previous_champion_metrics"] is None
    champion_file = Path(first["load_model"]["model_path"])
    champion_bytes = champion_file.read_bytes()
    update_training(pipelines, features=["Male"], scalers=["robust"], split={"test_size": 0.4, "random_state": 7})
    second = run_chain(training_settings(pipelines), "run_b")["load_model"]
    assert (second["model_version"], second["promoted"], second["champion_version"]) == (2, False, 1)
    assert second["decision_kind"] == "lost", second["decision"]
    assert second["decision"].startswith("not promoted: lost: roc_auc ")
    assert "for the champion, version 1, on the same " in second["decision"] and "held-out rows" in second["decision"]
    assert "incomparable" not in second["decision"] and "tie" not in second["decision"]
    assert second["holdout_rows"] == first["load_data"]["held_out"]  # the same share: every held-out row
    assert second["previous_champion_metrics"]["roc_auc"] > 0.95 > second["holdout_metrics"]["roc_auc"]
    assert champion_file.read_bytes() == champion_bytes
    assert second["scalers"] == ["robust"] and second["features"] == ["Male"]


def test_the_champion_is_scored_through_its_own_features_on_rows_neither_trained_on(pipelines):
    """Its score does not depend on the challenger's split or features; a larger holdout of the challenger
    compares on the champion's (smaller) held-out rows, which neither trained on."""
    run_chain(training_settings(pipelines), "run_a")
    update_training(pipelines, split={"test_size": 0.25, "random_state": 3}, promotion={"holdout": 0.3})
    second = run_chain(training_settings(pipelines), "run_b")
    update_training(pipelines, features=["Age", "Area Income"], promotion={"holdout": 0.2})
    third = run_chain(training_settings(pipelines), "run_c")
    assert second["load_data"]["held_out"] > third["load_data"]["held_out"]
    assert second["load_model"]["holdout_rows"] == third["load_model"]["holdout_rows"] == third["load_data"]["held_out"]
    # both lost to version 1, scored on the same rows at the same value, whatever the challenger's split and features
    assert second["load_model"]["previous_champion_version"] == third["load_model"]["previous_champion_version"] == 1
    assert second["load_model"]["champion_version"] == third["load_model"]["champion_version"] == 1
    assert second["load_model"]["previous_champion_metrics"] == third["load_model"]["previous_champion_metrics"]
    assert second["load_model"]["holdout_metrics"] != third["load_model"]["holdout_metrics"]


@pytest.mark.parametrize("policy", ["keep", "promote"])
def test_a_champion_whose_columns_are_gone_is_kept_with_the_reason_unless_the_yaml_says_promote(pipelines, tmp_path, policy):
    run_chain(training_settings(pipelines), "run_a")
    data = tmp_path / "dags" / "data" / "advertising.csv"
    frame = pd.read_csv(data)
    frame.drop(columns=["Area Income"]).to_csv(data, index=False)
    update_training(pipelines, features=["Daily Time Spent on Site", "Age", "Daily Internet Usage"], promotion={"on_incomparable": policy})
    out = run_chain(training_settings(pipelines), "run_b")["load_model"]
    assert out["decision_kind"] == "incomparable" and out["promoted"] is (policy == "promote")
    assert "incomparable: the champion, version 1, cannot be scored on the held-out rows: the dataset's columns changed" in out["decision"]
    assert "gone: Area Income" in out["decision"]
    assert out["champion_version"] == (2 if policy == "promote" else 1)
    assert "lost" not in out["decision"] and "tie" not in out["decision"]


def test_a_gate_failure_says_which_version_and_which_gate_first(pipelines):
    run_chain(training_settings(pipelines), "run_a")
    update_training(pipelines, min_accuracy=0.99, estimator={"name": "logistic_regression", "params": {"C": 1.0000001}})
    with pytest.raises(tasks.QualityGateError) as caught:
        run_chain(training_settings(pipelines), "run_b")
    first_line = str(caught.value).splitlines()[0]
    assert re.fullmatch(
        r"model v2 not promoted: accuracy 0\.9\d\d < 0\.990; roc_auc 0\.9\d{3} = champion v1 0\.9\d{3} \(tie\)", first_line
    ), first_line


def test_load_model_refuses_a_model_file_changed_after_it_was_scored(pipelines):
    """build_save_model_task scores the saved file; a file swapped before load_model_task (another model, a
    pickle) is refused by its sha256 and never becomes a version."""
    import pickle

    from adclick_ops.registry import Registry
    from adclick_ops.registry.serialization import UnsafeModelError

    settings = training_settings(pipelines)
    for name in CHAIN[:-1]:
        getattr(tasks, name)(settings=settings, run_id="manual__swap")
    candidate = run_files(settings, "manual__swap").candidate_model
    original = candidate.read_bytes()
    for swapped in (original[:-1] + bytes([original[-1] ^ 1]), pickle.dumps({"not": "a model"})):
        candidate.write_bytes(swapped)
        with pytest.raises(UnsafeModelError, match=r"model file changed after build_save_model_task saved and scored it; expected sha256 "):
            tasks.load_model(settings=settings, run_id="manual__swap")
    assert Registry.for_job(TrainingJob.model_validate(settings)).versions() == []


def test_load_model_decides_without_importing_scikit_learn(pipelines):
    """A task process pays every import: load_model_task uses the scores build_save_model_task wrote, and
    needs neither scikit-learn nor the ONNX libraries."""
    import json
    import subprocess
    import sys

    settings = training_settings(pipelines)
    for name in CHAIN[:-1]:
        getattr(tasks, name)(settings=settings, run_id="manual__light")
    code = (
        "import json, sys; from adclick_ops import tasks; "
        f"out = tasks.load_model(settings=json.loads({json.dumps(settings)!r}), run_id='manual__light'); "
        "print(json.dumps([out['promoted'], out['model_version'], sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy', 'onnx', 'onnxruntime', 'skl2onnx'))]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=pipelines.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    promoted, version, heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert (promoted, version, heavy) == (True, 1, [])


def test_two_dags_training_in_parallel_keep_their_own_champion(pipelines, tmp_path):
    """A copied pipeline file with its DAG renamed and its own champion's copy: both DAGs train at once, each
    registry and each copy holds that DAG's model only."""
    import threading

    text = (pipelines / "airflow_lab2.yaml").read_text()
    (pipelines / "copy.yaml").write_text(
        text.replace("Airflow_Lab2:", "Airflow_Lab2_Forest:", 1).replace("model_file: model.sav", "model_file: forest.onnx", 1)
    )
    edit_yaml(
        pipelines / "copy.yaml",
        lambda d: d["Airflow_Lab2_Forest"]["training"].update(estimator={"name": "random_forest", "params": {"n_estimators": 5}}),
    )
    jobs = {dag: training_settings(pipelines, dag) for dag in ("Airflow_Lab2", "Airflow_Lab2_Forest")}
    results, errors = {}, []

    def train(dag: str, run: str) -> None:
        try:
            results[(dag, run)] = run_chain(jobs[dag], run)["load_model"]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(dag, run)) for dag in jobs for run in ("r1", "r2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for dag, file, estimator in (
        ("Airflow_Lab2", "model.sav", "logistic_regression"),
        ("Airflow_Lab2_Forest", "forest.onnx", "random_forest"),
    ):
        registry = Registry.for_job(TrainingJob.model_validate(jobs[dag]))
        assert registry.champion_file == tmp_path / "model" / file
        assert {registry.card(v)["model"]["estimator"] for v in registry.versions()} == {estimator}
        assert registry.champion_file.read_bytes() == registry.model_bytes(registry.champion())
        assert {results[(dag, r)]["dag_id"] for r in ("r1", "r2")} == {dag}


def test_an_identical_retrain_below_a_new_floor_fails_the_run_and_moves_nothing(pipelines):
    first = run_chain(training_settings(pipelines), "run_a")["load_model"]
    update_training(pipelines, min_accuracy=0.999)  # the same model, a floor it misses, fail_run: below_floor
    with pytest.raises(tasks.QualityGateError) as caught:
        run_chain(training_settings(pipelines), "run_b")
    message = str(caught.value)
    assert re.match(r"model v1 not promoted: accuracy 0\.9\d\d < 0\.999\n", message), message
    assert "identical: run run_b trained the model of version 1 (run run_a) again; it is the champion" in message
    registry = Registry.for_job(TrainingJob.model_validate(training_settings(pipelines)))
    assert registry.versions() == [1] and registry.champion() == 1 == first["champion_version"]
    assert [e["action"] for e in registry.history()] == ["promoted", "retrained"]


def test_a_champion_whose_file_fails_its_checks_is_incomparable_and_kept(pipelines):
    run_chain(training_settings(pipelines), "run_a")
    registry = Registry.for_job(TrainingJob.model_validate(training_settings(pipelines)))
    path = Path(registry.location) / registry.card(1)["model"]["file"]
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    update_training(pipelines, scalers=["robust"])
    out = run_chain(training_settings(pipelines), "run_b")["load_model"]
    assert (out["model_version"], out["promoted"], out["champion_version"], out["decision_kind"]) == (2, False, 1, "incomparable")
    assert "incomparable: the champion, version 1, cannot be scored on the held-out rows: its file fails its checks: " in out["decision"]
    assert "does not match its card's sha256" in out["decision"]
    # the champion's copy is never another version's bytes: the champion's own file fails, so the copy is gone
    assert not Path(out["model_path"]).exists() and "does not match its card's sha256" in out["champion_file_error"]
