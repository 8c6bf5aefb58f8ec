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

from adclick_ops.artifacts import RunFiles, file_sha256

log = logging.getLogger(__name__)


class QualityGateError(RuntimeError):
    """The new version failed the promotion gates, and the pipeline asks that this fails the run."""


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
    run = RunFiles(settings, run_id)
    saved = run.save_arrays("dataset", x=x, y=y)
    summary = {"rows": int(len(y)), "positives": int(y.sum()), "features": settings["features"], "saved": saved}
    # for the model card: which data trained the version
    run.save_json("dataset.json", {"path": settings["dataset"], "sha256": file_sha256(settings["dataset"]), "rows": int(len(y))})
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
    """build_save_model_task: fit the whole pipeline and save it in the run's folder (skops)."""
    from adclick_ops.artifacts import dump_model, sha256, write_bytes_atomic
    from adclick_ops.steps.model import build_pipeline

    run = RunFiles(settings, run_id)
    train = run.load_arrays("train")
    est = settings["estimator"]
    model = build_pipeline(settings["scalers"], est["name"], est["params"]).fit(train["x"], train["y"])
    blob = dump_model(model)
    write_bytes_atomic(run.candidate_model, blob)
    log.info("model of run %s saved to %s", run_id, run.candidate_model)
    return {"candidate": str(run.candidate_model), "sha256": sha256(blob), "estimator": est["name"]}


# --- model lifecycle (docs/models.md): the version is kept, and the gates decide the champion -----


@_adapter
def load_model(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """load_model_task: load this run's model back, evaluate it, keep it as a version, and decide the champion.

    The decision is the task's last step and the run's: nothing after it (e-mail, trigger) changes
    it, and any failure before it leaves the champion as it was.
    """
    from adclick_ops.artifacts import as_path, load_model_file, write_bytes_atomic
    from adclick_ops.registry import Registry
    from adclick_ops.registry.cards import model_card
    from adclick_ops.steps.model import evaluate
    from adclick_ops.steps.promotion import Gates

    run = RunFiles(settings, run_id)
    model = load_model_file(run.candidate_model, [run.folder, as_path(settings["model_dir"])])
    test = run.load_arrays("test")
    metrics = evaluate(model, test["x"], test["y"])
    metrics.update({"model_path": str(run.promoted_model), "estimator": settings["estimator"]["name"], "run_id": run_id})
    write_bytes_atomic(run.path("metrics.json"), json.dumps(metrics, indent=2).encode())
    log.info("metrics of %s: %s", run_id, {k: metrics[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")})

    registry = Registry.for_settings(settings)
    card = model_card(settings, run_id, metrics, run.load_json("dataset.json"))
    version = registry.add_version(run.candidate_model.read_bytes(), card)
    gates = Gates.from_settings(settings["promotion"])
    outcome = registry.decide(version, lambda champion: evaluate(champion, test["x"], test["y"]), gates, by=f"run {run_id}")
    metrics.update(outcome.as_json())
    write_bytes_atomic(run.path("metrics.json"), json.dumps(metrics, indent=2).encode())
    if outcome.promoted:
        log.info("version %s of %s is the champion now: %s", version, settings["dag_id"], outcome.summary)
    else:
        log.warning("version %s of %s was kept but not promoted (champion: version %s): %s",
                    version, settings["dag_id"], outcome.champion, outcome.summary)
    if outcome.fails_run:
        raise QualityGateError(
            f"{'; '.join(outcome.reasons)}; version {version} was kept, not promoted, and "
            f"{run.promoted_model} is unchanged (training.promotion.fail_run: {gates.fail_run})"
        )
    return metrics


@_adapter
def start_flask_api(settings: dict[str, Any], **_: Any) -> str:
    """start_Flask_API: make sure the monitor answers; serve it here if nothing does."""
    from adclick_ops.monitor.service import ensure_monitor

    return ensure_monitor(settings)
