"""The Airflow task callables that pipeline files may name (see the allow-list in config.models).

Each is a few lines: read the run's inputs, call a step function, write the outputs, return a small
JSON summary as the task's XCom. Heavy imports stay inside the functions, so that parsing a DAG
file never loads pandas or scikit-learn.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable

from adclick_ops.artifacts import RunFiles

log = logging.getLogger(__name__)


class QualityGateError(RuntimeError):
    """The new model scores below `training.min_accuracy`; it was not promoted."""


def _adapter(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a task's exception visible to its failure callback.

    Airflow puts the exception into the callback's context in a worker, but not under
    `airflow dags test`; the failure e-mail must say what went wrong in both.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            try:
                from airflow.sdk import get_current_context

                get_current_context().setdefault("exception", exc)
            except Exception:  # not running inside Airflow
                pass
            raise

    return wrapper


@_adapter
def load_data(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """load_data_task: read and check the dataset, keep the used columns for the next tasks."""
    from adclick_ops.steps.data import read_dataset

    frame = read_dataset(settings["dataset"], settings["features"], settings["target"])
    x = frame[settings["features"]].to_numpy(dtype="float64")
    y = frame[settings["target"]].to_numpy(dtype="int64")
    saved = RunFiles(settings, run_id).save_arrays("dataset", x=x, y=y)
    summary = {"rows": int(len(y)), "positives": int(y.sum()), "features": settings["features"], "saved": saved}
    log.info("dataset %s: %s rows, %s positives", settings["dataset"], summary["rows"], summary["positives"])
    return summary


@_adapter
def preprocess(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """data_preprocessing_task: split, and fit the configured scalers on the training part only."""
    from adclick_ops.steps.data import DataError
    from adclick_ops.steps.model import make_preprocessor, split

    run = RunFiles(settings, run_id)
    data = run.load_arrays("dataset")
    s = settings["split"]
    try:
        x_train, x_test, y_train, y_test = split(data["x"], data["y"], s["test_size"], s["random_state"], s["stratify"])
    except ValueError as exc:  # too few rows for the split asked for (stratify needs 2 of each class)
        raise DataError(f"{settings['dataset']}: target {settings['target']!r}: cannot split {len(data['y'])} rows: {exc}") from None
    if len(set(y_train.tolist())) < 2:
        raise DataError(
            f"{settings['dataset']}: target {settings['target']!r}: the training part of the split ({len(y_train)} of "
            f"{len(data['y'])} rows) holds a single class; the file needs more rows of each class"
        )
    scaled_columns = make_preprocessor(settings["scalers"]).fit(x_train).transform(x_train[:1]).shape[1]
    run.save_arrays("split", x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)
    return {"train_rows": int(len(y_train)), "test_rows": int(len(y_test)), "scaled_columns": int(scaled_columns), "scalers": settings["scalers"]}


@_adapter
def separate_data_outputs(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """separate_data_outputs_task: hand the training and test sets on as two files."""
    run = RunFiles(settings, run_id)
    parts = run.load_arrays("split")
    train = run.save_arrays("train", x=parts["x_train"], y=parts["y_train"])
    test = run.save_arrays("test", x=parts["x_test"], y=parts["y_test"])
    return {"train": train, "test": test}


@_adapter
def build_save_model(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """build_save_model_task: fit the whole pipeline and promote it atomically, gate permitting."""
    from adclick_ops.artifacts import dump_model, sha256, write_bytes_atomic
    from adclick_ops.steps.model import build_pipeline

    run = RunFiles(settings, run_id)
    train = run.load_arrays("train")
    est = settings["estimator"]
    model = build_pipeline(settings["scalers"], est["name"], est["params"]).fit(train["x"], train["y"])
    blob = dump_model(model)
    write_bytes_atomic(run.candidate_model, blob)
    threshold = settings.get("min_accuracy")
    if threshold is not None:
        test = run.load_arrays("test")
        accuracy = float(model.score(test["x"], test["y"]))
        if accuracy < threshold:
            raise QualityGateError(
                f"test accuracy {accuracy:.4f} is below training.min_accuracy {threshold}; "
                f"the model was not promoted and {run.promoted_model} is unchanged"
            )
    write_bytes_atomic(run.promoted_model, blob)
    log.info("model promoted to %s", run.promoted_model)
    return {"model_path": str(run.promoted_model), "candidate": str(run.candidate_model), "sha256": sha256(blob), "estimator": est["name"]}


@_adapter
def load_model(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """load_model_task: load this run's model back and evaluate it on the test set."""
    from adclick_ops.artifacts import as_path, load_model_file, write_bytes_atomic
    from adclick_ops.steps.model import evaluate

    run = RunFiles(settings, run_id)
    model = load_model_file(run.candidate_model, [run.folder, as_path(settings["model_dir"])])
    test = run.load_arrays("test")
    metrics = evaluate(model, test["x"], test["y"])
    metrics.update({"model_path": str(run.promoted_model), "estimator": settings["estimator"]["name"], "run_id": run_id})
    write_bytes_atomic(run.path("metrics.json"), json.dumps(metrics, indent=2).encode())
    log.info("metrics of %s: %s", run_id, {k: metrics[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")})
    return metrics


@_adapter
def start_flask_api(settings: dict[str, Any], **_: Any) -> str:
    """start_Flask_API: make sure the monitor answers; serve it here if nothing does."""
    from adclick_ops.monitor.server import ensure_monitor

    return ensure_monitor(settings)
