"""adclick_ops.steps.model: split, preprocessing, estimator and scores (handing the preprocessing on: test_workfiles.py)."""

from __future__ import annotations

import numpy as np
import pytest

from adclick_ops.steps.data import DataError, read_dataset
from adclick_ops.steps.model import (
    build_pipeline,
    evaluate,
    fit_model,
    fit_preprocessing,
    make_preprocessor,
    preprocessing_parts,
    split,
)

from tests.support import PROJECT

FEATURES = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]
TARGET = "Clicked on Ad"


@pytest.fixture(scope="module")
def seed_data() -> tuple[np.ndarray, np.ndarray]:
    frame = read_dataset(PROJECT / "dags" / "data" / "advertising.csv", FEATURES, TARGET)
    return frame[FEATURES].to_numpy(float), frame[TARGET].to_numpy(int)


@pytest.mark.parametrize(
    "scalers,columns", [(["minmax", "standard"], 10), ([], 5), (["robust"], 5), (["maxabs", "robust", "standard"], 15)]
)
def test_scalers_side_by_side(scalers, columns):
    x = np.random.default_rng(0).normal(size=(20, 5))
    assert make_preprocessor(scalers).fit(x).transform(x).shape == (20, columns)


@pytest.mark.parametrize("scalers,names", [([], ["identity"]), (["robust"], ["robust"]), (["maxabs", "minmax"], ["maxabs", "minmax"])])
def test_the_parts_of_the_preprocessing_are_named_after_its_scalers(scalers, names):
    assert [name for name, _ in preprocessing_parts(make_preprocessor(scalers))] == names


def test_scalers_are_fitted_on_the_training_rows_only():
    x = np.arange(10, dtype=float).reshape(-1, 1)
    scaled = fit_preprocessing(x[:5], ["minmax"]).transform(x[5:])
    assert scaled.min() > 1  # test rows lie beyond the training range


@pytest.mark.parametrize(
    "name,cls",
    [
        ("logistic_regression", "LogisticRegression"),
        ("random_forest", "RandomForestClassifier"),
        ("gradient_boosting", "GradientBoostingClassifier"),
    ],
)
def test_estimator_by_name(name, cls):
    model = build_pipeline(["standard"], name, {"random_state": 0})
    assert type(model.named_steps["model"]).__name__ == cls


def test_seed_split_and_scores(seed_data):
    x, y = seed_data
    x_train, x_test, y_train, y_test = split(x, y, test_size=0.3, random_state=42, stratify=False)
    assert (len(y_train), len(y_test)) == (700, 300)
    model = fit_model(fit_preprocessing(x_train, ["minmax", "standard"]), x_train, y_train, estimator="logistic_regression", params={})
    metrics = evaluate(model, x_test, y_test)
    assert metrics["accuracy"] == pytest.approx(0.970, abs=1e-9)
    assert metrics["roc_auc"] == pytest.approx(0.986, abs=5e-4)
    assert sum(map(sum, metrics["confusion_matrix"])) == 300


@pytest.mark.parametrize("scalers", [[], ["robust"], ["minmax", "standard"]])
def test_fitting_in_two_steps_is_fitting_the_whole_pipeline(seed_data, scalers):
    """The split between data_preprocessing_task and build_save_model_task changes no prediction."""
    x, y = seed_data
    x_train, x_test, y_train, _ = split(x, y, test_size=0.3, random_state=42, stratify=False)
    params = {"max_iter": 1000}
    two_steps = fit_model(fit_preprocessing(x_train, scalers), x_train, y_train, estimator="logistic_regression", params=params)
    whole = build_pipeline(scalers, "logistic_regression", params).fit(x_train, y_train)
    np.testing.assert_allclose(two_steps.predict_proba(x_test), whole.predict_proba(x_test))


def test_a_split_without_both_classes_in_training_is_a_data_error():
    x, y = np.arange(6, dtype=float).reshape(-1, 1), np.array([0, 0, 0, 1, 1, 1])
    # 0.8 of 6 rows leaves one training row: one class whatever the shuffle
    with pytest.raises(DataError, match=r"data.csv: target 'y': the training part of the split \(1 of 6 rows\) holds a single class"):
        split(x, y, test_size=0.8, random_state=0, stratify=False, source="data.csv", target="y")


def test_a_split_that_cannot_be_made_is_a_data_error():
    x, y = np.zeros((3, 1)), np.array([0, 1, 1])
    with pytest.raises(DataError, match="data.csv: target 'y': cannot split 3 rows"):
        split(x, y, test_size=0.5, random_state=0, stratify=True, source="data.csv", target="y")
