"""Estimator parameters checked with scikit-learn's own rules, before any run: what `adclick-ops validate` asks.

Only the estimator's own module is imported (not the rest of the steps), so the check costs the
import of one scikit-learn estimator.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from adclick_ops.config.vocabulary import EstimatorName

# Import paths, so that a task pays only for the estimator it trains.
ESTIMATOR_CLASSES: dict[EstimatorName, str] = {
    "logistic_regression": "sklearn.linear_model.LogisticRegression",
    "random_forest": "sklearn.ensemble.RandomForestClassifier",
    "gradient_boosting": "sklearn.ensemble.GradientBoostingClassifier",
}
# Parameters that only make the trial fit slower; capped there (their ranges are checked first).
_TRIAL_CAPS = {"n_estimators": 2, "max_iter": 20}


def estimator_class(name: EstimatorName) -> type:
    module, _, cls = ESTIMATOR_CLASSES[name].rpartition(".")
    return getattr(importlib.import_module(module), cls)


def param_problems(name: EstimatorName, params: dict[str, Any], n_features: int) -> list[tuple[str | None, str]]:
    """(parameter or None for the whole set, message) for each value scikit-learn would refuse at fit time.

    Each value is checked on its own against the estimator's declared constraints, so that every
    bad value is reported; values that pass are then tried together in a fit on a few rows, which
    is where scikit-learn checks combinations (penalty with solver, max_features with the columns).
    """
    cls = estimator_class(name)
    problems: list[tuple[str | None, str]] = []
    for key, value in params.items():
        try:
            cls(**{key: value})._validate_params()
        except (ValueError, TypeError) as exc:
            problems.append((key, " ".join(str(exc).split())))
    if problems:
        return problems
    import numpy as np

    trial = {k: (min(v, _TRIAL_CAPS[k]) if k in _TRIAL_CAPS and isinstance(v, int) else v) for k, v in params.items()}
    trial.pop("n_jobs", None)
    rows = 8
    x = np.arange(rows * max(n_features, 1), dtype="float64").reshape(rows, -1) % 7
    y = np.array([0, 1] * (rows // 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cls(**trial).fit(x, y)
        except (ValueError, TypeError) as exc:
            problems.append((None, f"scikit-learn refuses these parameters together: {' '.join(str(exc).split())}"))
    return problems
