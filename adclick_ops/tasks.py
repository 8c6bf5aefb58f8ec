"""The Airflow task callables that pipeline files may name (the allow-list is config.models.CALLABLES).

Each rebuilds its validated settings section once from the task's `op_kwargs`, reads the run's
inputs, calls step functions with named arguments, writes the outputs and returns a small JSON
summary as the task's XCom. Heavy imports stay inside the functions, so that parsing a DAG file
never loads pandas or scikit-learn.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from adclick_ops.artifacts import RunFiles, file_sha256
from adclick_ops.config.models import Monitor, TrainingJob
from adclick_ops.config.vocabulary import METRICS
from adclick_ops.steps.errors import QualityGateError

__all__ = ["QualityGateError", "build_save_model", "load_data", "load_model", "preprocess", "separate_data_outputs", "start_flask_api"]

log = logging.getLogger(__name__)
SCORES = "scores.json"  # build_save_model_task's scores of the saved model and of the champion, for load_model_task


def _expose_failure(func: Callable[..., Any]) -> Callable[..., Any]:
    """Record a task's failure, and raise the failures that a retry cannot mend as non-retryable.

    On an exception, the wrapper pushes the `failure` XCom (`adclick_ops.failures`) while the task
    still runs, puts the exception into the Airflow context (where the failure e-mail reads it),
    and raises data, gate and config errors as Airflow's `AirflowFailException`, with the same
    message and the original exception as its cause. Other failures (storage, network) are raised
    as they are and follow `retries`.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            from adclick_ops import failures

            try:
                from airflow.sdk import get_current_context

                context = get_current_context()
            except Exception:  # not running inside Airflow
                context = None
            if context is not None:
                context.setdefault("exception", exc)
                failures.push(context, exc)
            raised = failures.non_retryable(exc)
            if raised is exc:
                raise
            raise raised from exc

    return wrapper


def _run_files(job: TrainingJob, run_id: str) -> RunFiles:
    return RunFiles(job.artifacts_root, job.dag_id, run_id, model_dir=job.model_dir, model_file=job.model_file)


@_expose_failure
def load_data(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """load_data_task: read and check the dataset, keep the used columns for the next tasks."""
    from adclick_ops.steps.data import read_dataset

    job = TrainingJob.model_validate(settings)
    frame = read_dataset(job.dataset, job.features, job.target)
    x = frame[job.features].to_numpy(dtype="float64")
    y = frame[job.target].to_numpy(dtype="int64")
    run = _run_files(job, run_id)
    saved = run.save_arrays("dataset", x=x, y=y)
    # for the model card: which data trained the version
    run.save_json("dataset.json", {"path": job.dataset, "sha256": file_sha256(job.dataset), "rows": int(len(y))})
    log.info("dataset %s: %s rows, %s positives", job.dataset, len(y), int(y.sum()))
    return {"rows": int(len(y)), "positives": int(y.sum()), "features": job.features, "saved": saved}


@_expose_failure
def preprocess(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """data_preprocessing_task: split, fit the configured scalers on the training part, hand both on."""
    from adclick_ops.steps.model import fit_preprocessing, preprocessing_state, split

    job = TrainingJob.model_validate(settings)
    run = _run_files(job, run_id)
    data = run.load_arrays("dataset")
    s = job.split
    x_train, x_test, y_train, y_test = split(
        data["x"], data["y"], test_size=s.test_size, random_state=s.random_state, stratify=s.stratify, source=job.dataset, target=job.target
    )
    preprocessing = fit_preprocessing(x_train, job.scalers)
    run.save_arrays("split", x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)
    run.save_arrays("preprocessing", **preprocessing_state(preprocessing))
    columns = preprocessing.transform(x_train[:1]).shape[1]
    return {"train_rows": int(len(y_train)), "test_rows": int(len(y_test)), "scaled_columns": int(columns), "scalers": list(job.scalers)}


@_expose_failure
def separate_data_outputs(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """separate_data_outputs_task: hand the training and test sets on as two files."""
    run = _run_files(TrainingJob.model_validate(settings), run_id)
    parts = run.load_arrays("split")
    train = run.save_arrays("train", x=parts["x_train"], y=parts["y_train"])
    test = run.save_arrays("test", x=parts["x_test"], y=parts["y_test"])
    return {"train": train, "test": test}


@_expose_failure
def build_save_model(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """build_save_model_task: fit the estimator after the fitted preprocessing, convert the whole model to ONNX,
    check that onnxruntime gives scikit-learn's probabilities on the test set, save the file in the run's
    folder, and score it, and the current champion, on the test set through onnxruntime.

    The scores go to the run's `scores.json` with the file's sha256 and its ONNX description, for
    load_model_task: the conversion libraries are loaded here already, and that task then does without them.
    """
    from adclick_ops.artifacts import sha256, write_bytes_atomic
    from adclick_ops.registry import Registry
    from adclick_ops.registry.convert import convert_checked
    from adclick_ops.steps.model import evaluate, fit_model, restore_preprocessing

    job = TrainingJob.model_validate(settings)
    run = _run_files(job, run_id)
    train = run.load_arrays("train")
    preprocessing = restore_preprocessing(run.load_arrays("preprocessing"), job.scalers)
    fitted = fit_model(preprocessing, train["x"], train["y"], estimator=job.estimator.name, params=job.estimator.params)
    test = run.load_arrays("test")
    # a model whose ONNX file does not give the fitted pipeline's probabilities stops here, unsaved
    blob, model, difference = convert_checked(fitted, list(job.features), test["x"], f"the model of run {run_id}")
    write_bytes_atomic(run.candidate_model, blob)
    log.info("model of run %s saved to %s (ONNX, probabilities within %.2g of scikit-learn's)", run_id, run.candidate_model, difference)
    metrics = evaluate(model, test["x"], test["y"])
    registry = Registry.for_job(job)
    champion, champion_metrics, problem = registry.champion(), None, None
    if champion is not None:
        try:
            champion_metrics = evaluate(registry.load_model(champion), test["x"], test["y"])
        except Exception as exc:  # noqa: BLE001 - e.g. the features changed since the champion was trained; the gates say so
            problem = f"{type(exc).__name__}: {exc}"
    scores = {
        "sha256": sha256(blob),
        "onnx": model.info.as_json(),
        "fidelity": difference,
        "metrics": metrics,
        "champion": {"version": champion, "metrics": champion_metrics, "problem": problem},
    }
    run.save_json(SCORES, scores)
    return {"candidate": str(run.candidate_model), "sha256": scores["sha256"], "estimator": job.estimator.name}


@_expose_failure
def load_model(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """load_model_task: load this run's saved model, keep it as a version with its scores, and decide the champion.

    The model file is read back and checked against the sha256 of the file build_save_model_task
    checked and scored, so this task needs neither scikit-learn nor the ONNX libraries unless another
    run changed the champion in between (the new one is then scored here, through onnxruntime).
    The decision is the task's last step and the run's: nothing after it (e-mail, trigger) changes
    it, and any failure before it leaves the champion as it was.
    """
    from adclick_ops.artifacts import read_model_file, sha256, write_bytes_atomic
    from adclick_ops.registry import Registry
    from adclick_ops.registry.cards import model_card
    from adclick_ops.registry.serialization import UnsafeModelError
    from adclick_ops.steps.promotion import Gates, decide, rejection

    job = TrainingJob.model_validate(settings)
    run = _run_files(job, run_id)
    blob = read_model_file(run.candidate_model, [run.folder, run.model_dir])
    scores = run.load_json(SCORES)
    if sha256(blob) != scores["sha256"]:
        raise UnsafeModelError(
            f"{run.candidate_model}: the model file changed after build_save_model_task saved and scored it; expected sha256 "
            f"{scores['sha256']}, found {sha256(blob)}"
        )
    metrics = dict(scores["metrics"])
    metrics.update({"model_path": str(run.promoted_model), "estimator": job.estimator.name, "run_id": run_id})
    write_bytes_atomic(run.path("metrics.json"), json.dumps(metrics, indent=2).encode())
    log.info("metrics of %s: %s", run_id, {name: metrics[name] for name in METRICS})

    registry = Registry.for_job(job)
    version = registry.add_version(blob, model_card(job, run_id, metrics, run.load_json("dataset.json"), scores.get("onnx")))
    gates = Gates.from_promotion(job.gates(), job.gates_field())
    recorded = scores["champion"]
    known = {recorded["version"]: (recorded["metrics"], recorded["problem"])} if recorded["version"] is not None else {}
    scored: dict[str, Any] = {}

    def score(champion: Any) -> dict[str, Any]:
        # a champion that another run promoted since build_save_model_task scored the one before
        from adclick_ops.steps.model import evaluate

        test = run.load_arrays("test")
        scored["metrics"] = evaluate(champion, test["x"], test["y"])
        return scored["metrics"]

    outcome = registry.decide(version, score, gates, by=f"run {run_id}", known=known)
    if "metrics" not in scored and outcome.previous_champion is not None:
        if outcome.previous_champion in known:
            scored["metrics"] = known[outcome.previous_champion][0]
        else:  # decided by an earlier try of this task
            try:
                score(registry.load_model(outcome.previous_champion))
            except Exception as exc:  # noqa: BLE001 - it could not be scored then either
                log.warning("the previous champion, version %s, cannot be scored: %s", outcome.previous_champion, exc)
    champion_metrics = scored.get("metrics") if outcome.previous_champion is not None else None
    metrics.update(outcome.as_json())
    metrics.update(
        scalers=list(job.scalers),
        previous_champion_metrics={name: champion_metrics.get(name) for name in METRICS} if champion_metrics else None,
    )
    write_bytes_atomic(run.path("metrics.json"), json.dumps(metrics, indent=2).encode())
    if outcome.promoted:
        log.info("version %s of %s is the champion now: %s", version, job.dag_id, outcome.summary)
    else:
        log.warning(
            "version %s of %s was kept but not promoted (champion: version %s): %s", version, job.dag_id, outcome.champion, outcome.summary
        )
    if outcome.fails_run:
        asked = (
            "training.min_accuracy fails the run below it" if job.promotion is None else f"training.promotion.fail_run: {gates.fail_run}"
        )
        decision = decide(metrics, champion_metrics, gates, champion_version=outcome.previous_champion)
        headline = rejection(version, decision) if decision.failed else f"model v{version} not promoted: {'; '.join(outcome.reasons)}"
        raise QualityGateError(
            f"{headline}\n{'; '.join(outcome.reasons)}; version {version} was kept, not promoted, "
            f"and {run.promoted_model} is unchanged ({asked})"
        )
    return metrics


@_expose_failure
def start_flask_api(settings: dict[str, Any], **_: Any) -> str:
    """start_Flask_API: make sure the monitor answers; serve it here if nothing does."""
    from adclick_ops.monitor.ensure import ensure_monitor

    return ensure_monitor(Monitor.model_validate(settings))
