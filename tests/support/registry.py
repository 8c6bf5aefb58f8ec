"""Helpers of the model-lifecycle tests: the real task chain on a dataset, and datasets that make better or worse models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adclick_ops import tasks
from adclick_ops.config.vocabulary import SCALERS
from adclick_ops.registry import Registry
from adclick_ops.steps.model import build_pipeline, split

from tests.support import PROJECT, edit_yaml, training_settings

FEATURES = [
    "Daily Time Spent on Site",
    "Age",
    "Area Income",
    "Daily Internet Usage",
    "Male",
]
TARGET = "Clicked on Ad"
SEED = pd.read_csv(PROJECT / "dags" / "data" / "advertising.csv")
# Small fitted pipelines on the seed rows, for the tests of the model files.
X = SEED[FEATURES].to_numpy(float)
Y = SEED[TARGET].to_numpy(int)
X_TRAIN, X_TEST, Y_TRAIN, Y_TEST = split(X, Y, test_size=0.3, random_state=42, stratify=True)
PARAMS = {
    "logistic_regression": {"max_iter": 1000},
    "random_forest": {"n_estimators": 20, "random_state": 0},
    "gradient_boosting": {"n_estimators": 30, "random_state": 0},
}
SCALINGS = [[], *([s] for s in SCALERS), list(SCALERS)]


def fitted(estimator: str, scalers: list[str], **params) -> object:
    """`estimator` with `scalers`, fitted on the seed's training rows."""
    return build_pipeline(scalers, estimator, {**PARAMS[estimator], **params}).fit(X_TRAIN, Y_TRAIN)


CHAIN = (
    "load_data",
    "preprocess",
    "separate_data_outputs",
    "build_save_model",
    "load_model",
)


def run_chain(settings: dict, run_id: str) -> dict:
    """The five training tasks in order, as Airflow runs them; returns load_model_task's XCom."""
    out = None
    for name in CHAIN:
        out = getattr(tasks, name)(settings=settings, run_id=run_id)
    return out


def set_training(pipelines: Path, **values) -> None:
    edit_yaml(
        pipelines / "airflow_lab2.yaml",
        lambda d: d["Airflow_Lab2"]["training"].update(values),
    )


def weak_model(pipelines: Path) -> None:
    """A model far worse than the seed's: one tree stump on unscaled features."""
    set_training(
        pipelines,
        scalers=[],
        estimator={
            "name": "random_forest",
            "params": {"n_estimators": 1, "max_depth": 1, "random_state": 0},
        },
    )


def strong_model(pipelines: Path) -> None:
    set_training(
        pipelines,
        scalers=["minmax", "standard"],
        estimator={"name": "logistic_regression", "params": {"max_iter": 1000}},
    )


def degenerate_dataset(path: Path, lands_in: str) -> Path:
    """999 rows of class 0 and one of class 1, on a row that is not held out and that the default split
    (test_size 0.3, random_state 42) puts in `lands_in`: "training" or "test"."""
    import io

    from sklearn.model_selection import train_test_split

    from adclick_ops.config.vocabulary import HOLDOUT_SHARE
    from adclick_ops.steps.holdout import held_out, row_buckets

    frame = SEED.head(1000).copy()
    frame[TARGET] = 0
    for row in range(len(frame)):
        trial = frame.copy()
        trial.loc[row, TARGET] = 1
        hold = held_out(row_buckets(pd.read_csv(io.StringIO(trial.to_csv(index=False)), dtype=str, keep_default_na=False)), HOLDOUT_SHARE)
        if hold[row]:
            continue
        _, test_positions = train_test_split(np.arange(int((~hold).sum())), test_size=0.3, random_state=42)
        if (int((~hold)[:row].sum()) in set(test_positions.tolist())) == (lands_in == "test"):
            trial.to_csv(path, index=False)
            return path
    raise AssertionError(f"no row lands in {lands_in}")


def temporaries(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*.tmp"))


def model_rows(n: int = 3) -> list[dict]:
    return [{f: (float(v) if f != "Male" else int(v)) for f, v in row.items()} for row in SEED[FEATURES].head(n).to_dict("records")]


def rows_matrix(rows: list[dict]) -> np.ndarray:
    return np.array([[r[f] for f in FEATURES] for r in rows], dtype=float)


def train_two_versions(pipelines: Path, model_dir: Path) -> Registry:
    """Two versions: 1 (a stump, champion first), 2 (the seed's model, champion now)."""
    weak_model(pipelines)
    run_chain(training_settings(pipelines), "r1")
    strong_model(pipelines)
    run_chain(training_settings(pipelines), "r2")
    return Registry(str(model_dir), "Airflow_Lab2")


def hostile(blob: bytes, feature: int = 2**40 + 1) -> bytes:
    """`blob`, an ONNX forest, with its first split reading feature `feature` (out of range by default)."""
    import onnx

    model = onnx.load_from_string(blob)
    tree = next(n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier")
    attributes = {a.name: a for a in tree.attribute}
    first = next(i for i, m in enumerate(attributes["nodes_modes"].strings) if m != b"LEAF")
    attributes["nodes_featureids"].ints[first] = feature
    return model.SerializeToString()


def plant_version(registry: Registry, blob: bytes, like: int) -> int:
    """A new version holding `blob`, its card copied from version `like` with the file's own sha256: a file that
    matches its card, as someone with write access to the registry could leave it."""
    import hashlib
    import json

    digest = hashlib.sha256(blob).hexdigest()
    registry.store.write(f"models/{digest}.onnx", blob)
    card = registry.card(like)
    number = registry.versions()[-1] + 1
    card.update(version=number, run_id=f"planted_{number}")
    card["model"].update(file=f"models/{digest}.onnx", sha256=digest, bytes=len(blob))
    assert registry.store.create(f"versions/{number:06d}.json", json.dumps(card).encode())
    return number


def force_champion(registry: Registry, number: int, reason: str) -> None:
    """Point champion.json at version `number` without the checks that promote makes, as someone with write
    access to the registry could leave it."""
    registry._change(
        lambda state: {
            "at": "2026-01-01T00:00:00+00:00",
            "action": "promote",
            "version": number,
            "from": state["champion"],
            "reason": reason,
            "by": "someone",
        }
    )
