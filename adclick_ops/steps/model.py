"""The model: split, preprocessing, estimator and evaluation, as plain scikit-learn functions (the gates are in promotion.py).

Every scaler and estimator that a pipeline file may name (adclick_ops.config.vocabulary) is
implemented here, once, in SCALER_CLASSES and (in steps.params, which also generates the parameter
rules that validation reads) ESTIMATOR_CLASSES.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, TransformerMixin
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from adclick_ops.config.vocabulary import EstimatorName, MetricName, ScalerName
from adclick_ops.steps.errors import DataError
from adclick_ops.steps.params import ESTIMATOR_CLASSES as ESTIMATOR_CLASSES  # re-exported: the steps' names, in one module
from adclick_ops.steps.params import estimator_class

SCALER_CLASSES: dict[ScalerName, type[TransformerMixin]] = {
    "minmax": MinMaxScaler,
    "standard": StandardScaler,
    "robust": RobustScaler,
    "maxabs": MaxAbsScaler,
}
NO_SCALING = "identity"


def split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    test_size: float,
    random_state: int | None,
    stratify: bool,
    source: str = "dataset",
    target: str = "target",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/test split (x_train, x_test, y_train, y_test); a training part that cannot train is a DataError."""
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_size, random_state=random_state, stratify=y if stratify else None
        )
    except ValueError as exc:  # too few rows for the split asked for (stratify needs 2 of each class)
        raise DataError(f"{source}: target {target!r}: cannot split {len(y)} rows: {exc}") from None
    if len(np.unique(y_train)) < 2:
        raise DataError(
            f"{source}: target {target!r}: the training part of the split ({len(y_train)} of {len(y)} rows) "
            "holds a single class; the file needs more rows of each class"
        )
    return x_train, x_test, y_train, y_test


def make_preprocessor(scalers: list[ScalerName]) -> TransformerMixin:
    """Each scaler applied to all features, outputs side by side (the seed's column transformer)."""
    if not scalers:
        return FunctionTransformer(feature_names_out="one-to-one")
    return FeatureUnion([(name, SCALER_CLASSES[name]()) for name in scalers])


def preprocessing_parts(preprocessor: TransformerMixin) -> list[tuple[str, Any]]:
    """The named parts of a preprocessing that make_preprocessor built: each scaler, or the one that does not scale."""
    if isinstance(preprocessor, FeatureUnion):
        return list(preprocessor.transformer_list)
    return [(NO_SCALING, preprocessor)]


def fit_preprocessing(x_train: np.ndarray, scalers: list[ScalerName]) -> TransformerMixin:
    """The configured scalers, fitted on the training rows only."""
    return make_preprocessor(scalers).fit(x_train)


def make_estimator(name: EstimatorName, params: dict[str, Any]) -> ClassifierMixin:
    return estimator_class(name)(**params)


def build_pipeline(scalers: list[ScalerName], estimator: EstimatorName, params: dict[str, Any]) -> Pipeline:
    """The whole model, unfitted, so that the saved file scores raw rows."""
    return Pipeline([("preprocess", make_preprocessor(scalers)), ("model", make_estimator(estimator, params))])


def fit_model(
    preprocessing: TransformerMixin, x_train: np.ndarray, y_train: np.ndarray, *, estimator: EstimatorName, params: dict[str, Any]
) -> Pipeline:
    """Fit the estimator on the preprocessed training rows; the result is the whole model (preprocessing + estimator)."""
    model = make_estimator(estimator, params).fit(preprocessing.transform(x_train), y_train)
    return Pipeline([("preprocess", preprocessing), ("model", model)])


def evaluate(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC AUC and the confusion matrix [[tn, fp], [fn, tp]].

    `model` is anything with `predict_proba`: the ONNX model that serves (registry.OnnxModel), or a fitted
    pipeline. A row is predicted clicked when its probability is above one half, as the predictions served.
    """
    scores = np.asarray(model.predict_proba(x))[:, 1]
    predicted = (scores > 0.5).astype("int64")
    both = len(np.unique(y)) == 2
    metrics: dict[MetricName, float | None] = {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, scores)) if both else None,
    }
    return {**metrics, "confusion_matrix": confusion_matrix(y, predicted, labels=[0, 1]).tolist(), "n_test": int(len(y))}
