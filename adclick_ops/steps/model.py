"""The model: preprocessing, estimator, split and evaluation, as plain scikit-learn functions."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

SCALER_CLASSES = {"minmax": MinMaxScaler, "standard": StandardScaler, "robust": RobustScaler, "maxabs": MaxAbsScaler}


def make_preprocessor(scalers: list[str]):
    """Each scaler applied to all features, outputs side by side (the seed's column transformer)."""
    if not scalers:
        return FunctionTransformer(feature_names_out="one-to-one")
    return FeatureUnion([(name, SCALER_CLASSES[name]()) for name in scalers])


def make_estimator(name: str, params: dict[str, Any]) -> ClassifierMixin:
    if name == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**params)
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**params)
    if name == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(**params)
    raise ValueError(f"unknown estimator {name!r}")


def build_pipeline(scalers: list[str], estimator: str, params: dict[str, Any]) -> Pipeline:
    """The whole model, so that the saved file scores raw rows."""
    return Pipeline([("preprocess", make_preprocessor(scalers)), ("model", make_estimator(estimator, params))])


def split(x: np.ndarray, y: np.ndarray, test_size: float, random_state: int | None, stratify: bool):
    """Train/test split: returns x_train, x_test, y_train, y_test."""
    return train_test_split(x, y, test_size=test_size, random_state=random_state, stratify=y if stratify else None)


def evaluate(model: Pipeline, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC AUC and the confusion matrix [[tn, fp], [fn, tp]]."""
    predicted = model.predict(x)
    if hasattr(model, "predict_proba"):
        scores = model.predict_proba(x)[:, 1]
    else:
        scores = model.decision_function(x)
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, scores)) if both else None,
        "confusion_matrix": confusion_matrix(y, predicted, labels=[0, 1]).tolist(),
        "n_test": int(len(y)),
    }
