"""The Airflow task callables that pipeline files may name (the allow-list is config.models.CALLABLES).

Each rebuilds its validated settings section once from the task's `op_kwargs`, reads the run's
inputs, calls step functions with named arguments, writes the outputs and returns a small JSON
summary as the task's XCom. Heavy imports stay inside the functions, so that parsing a DAG file
never loads pandas or scikit-learn.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from adclick_ops.artifacts import RunFiles, file_sha256
from adclick_ops.config.models import Monitor, TrainingJob
from adclick_ops.config.vocabulary import METRICS
from adclick_ops.preload import freeze_heap
from adclick_ops.steps.errors import QualityGateError

__all__ = ["QualityGateError", "build_save_model", "load_data", "load_model", "preprocess", "separate_data_outputs", "start_flask_api"]

log = logging.getLogger(__name__)
SCORES = "scores.json"  # build_save_model_task's scores of the saved model and of the champion, for load_model_task
HOLDOUT = "holdout.json"  # load_data_task's held-out rows: their share, the dataset's columns, the numeric ones kept


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
        freeze_heap("task")
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
    """load_data_task: read and check the dataset, set the held-out rows apart, keep the rest for training.

    The held-out rows (steps.holdout) keep every numeric column of the dataset, so that the champion
    can be scored on them through its own features, whatever this run's features are.
    """
    import pandas as pd

    from adclick_ops.artifacts import as_path
    from adclick_ops.steps.data import check_dataset, read_csv_checked
    from adclick_ops.steps.holdout import SCHEME, held_out, row_buckets

    job = TrainingJob.model_validate(settings)
    raw, line_of = read_csv_checked(job.dataset)
    frame = check_dataset(raw, job.features, job.target, job.dataset, line_of)
    with as_path(job.dataset).open("rb") as fh:
        text = pd.read_csv(fh, dtype=str, keep_default_na=False)
    buckets = row_buckets(text)
    share = job.gates().holdout
    hold = held_out(buckets, share)
    x = frame[job.features].to_numpy(dtype="float64")
    y = frame[job.target].to_numpy(dtype="int64")
    run = _run_files(job, run_id)
    saved = run.save_arrays("dataset", x=x[~hold], y=y[~hold])
    numeric = [str(c) for c in raw.columns if pd.api.types.is_numeric_dtype(raw[c]) and not pd.api.types.is_bool_dtype(raw[c])]
    columns = {f"column{i}": raw[c].to_numpy(dtype="float64")[hold] for i, c in enumerate(numeric)}
    run.save_arrays("holdout", bucket=buckets[hold], y=y[hold], **columns)
    holdout = {"share": share, "scheme": SCHEME, "columns": sorted(map(str, raw.columns)), "numeric": numeric, "rows": int(hold.sum())}
    run.save_json(HOLDOUT, holdout)
    # for the model card: which data trained the version, and which rows it never saw
    dataset = {"path": job.dataset, "sha256": file_sha256(job.dataset), "rows": int(len(y)), "trained_on_rows": int((~hold).sum())}
    run.save_json("dataset.json", dataset | {"holdout": holdout})
    log.info(
        "dataset %s: %s rows, %s positives; %s rows held out (share %g, by a hash of each row) for comparing with the champion",
        job.dataset,
        len(y),
        int(y.sum()),
        int(hold.sum()),
        share,
    )
    return {"rows": int(len(y)), "positives": int(y.sum()), "held_out": int(hold.sum()), "features": job.features, "saved": saved}


def compare_with_champion(job: TrainingJob, run: RunFiles, candidate: Any, champion: int) -> Any:
    """The new version (`candidate`, an OnnxModel) and version `champion` on the same held-out rows (registry.keep)."""
    from adclick_ops.registry import Registry
    from adclick_ops.registry.keep import compare_on_holdout

    return compare_on_holdout(Registry.for_job(job), champion, candidate, run.load_json(HOLDOUT), run.load_arrays("holdout"), job)


@_expose_failure
def preprocess(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """data_preprocessing_task: split, fit the configured scalers on the training part, hand both on."""
    from adclick_ops.steps.model import fit_preprocessing, split

    job = TrainingJob.model_validate(settings)
    run = _run_files(job, run_id)
    data = run.load_arrays("dataset")
    s = job.split
    x_train, x_test, y_train, y_test = split(
        data["x"], data["y"], test_size=s.test_size, random_state=s.random_state, stratify=s.stratify, source=job.dataset, target=job.target
    )
    preprocessing = fit_preprocessing(x_train, job.scalers)
    run.save_arrays("split", x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)
    run.save_preprocessing(preprocessing)
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
    from adclick_ops.steps.model import evaluate, fit_model

    job = TrainingJob.model_validate(settings)
    run = _run_files(job, run_id)
    train = run.load_arrays("train")
    preprocessing = run.load_preprocessing(job.scalers)
    fitted = fit_model(preprocessing, train["x"], train["y"], estimator=job.estimator.name, params=job.estimator.params)
    test = run.load_arrays("test")
    # a model whose ONNX file does not give the fitted pipeline's probabilities stops here, unsaved
    blob, model, difference = convert_checked(fitted, list(job.features), test["x"], f"the model of run {run_id}")
    write_bytes_atomic(run.candidate_model, blob)
    log.info("model of run %s saved to %s (ONNX, probabilities within %.2g of scikit-learn's)", run_id, run.candidate_model, difference)
    metrics = evaluate(model, test["x"], test["y"])
    champion = Registry.for_job(job).champion()
    comparison = compare_with_champion(job, run, model, champion) if champion is not None else None
    scores = {
        "sha256": sha256(blob),
        "onnx": model.info.as_json(),
        "fidelity": difference,
        "metrics": metrics,
        "comparison": comparison.as_json() if comparison else None,
    }
    run.save_json(SCORES, scores)
    return {"candidate": str(run.candidate_model), "sha256": scores["sha256"], "estimator": job.estimator.name}


def _compare_later(job: TrainingJob, run: RunFiles, blob: bytes) -> Callable[[int], Any]:
    """compare_with_champion for a champion that another run promoted after build_save_model_task compared."""

    def compare(champion: int) -> Any:
        from adclick_ops.registry.serialization import load_model_bytes

        candidate = load_model_bytes(blob, f"{run.candidate_model}", n_features=len(job.features))
        return compare_with_champion(job, run, candidate, champion)

    return compare


@_expose_failure
def load_model(settings: dict[str, Any], run_id: str, **_: Any) -> dict[str, Any]:
    """load_model_task: keep this run's saved model as a version, decide the champion, return the run's record.

    registry.keep does the work: it checks the file against the sha256 build_save_model_task scored and
    decides on the comparison that task made (steps.promotion.decide). The decision is the run's last
    step: nothing after it (e-mail, trigger) changes it, and any failure before it leaves the champion as
    it was. The record (adclick_ops.record.TrainingRecord) is the XCom and the run's `metrics.json`.
    """
    from adclick_ops.record import TrainingRecord
    from adclick_ops.registry import Registry
    from adclick_ops.registry.cards import model_card
    from adclick_ops.registry.keep import keep_and_decide, known_comparisons, outcome_line, read_scored_model
    from adclick_ops.steps.promotion import Gates, gate_failure

    job = TrainingJob.model_validate(settings)
    run = _run_files(job, run_id)
    scores = run.load_json(SCORES)
    blob = read_scored_model(run, scores)
    log.info("metrics of %s: %s", run_id, {name: scores["metrics"][name] for name in METRICS})
    gates = Gates.from_promotion(job.gates(), job.gates_field())
    card = model_card(job, run_id, scores["metrics"], run.load_json("dataset.json"), scores.get("onnx"))
    outcome = keep_and_decide(Registry.for_job(job), blob, card, gates, run_id, _compare_later(job, run, blob), known_comparisons(scores))
    record = TrainingRecord.of(run_id, job, scores["metrics"], outcome, str(run.promoted_model))
    run.save_json("metrics.json", record.as_xcom())
    log.log(logging.INFO if outcome.promoted else logging.WARNING, "%s", outcome_line(outcome, job.dag_id))
    if outcome.fails_run:
        raise QualityGateError(gate_failure(outcome.version, outcome.failed, outcome.reasons, gates, str(run.promoted_model)))
    return record.as_xcom()


@_expose_failure
def start_flask_api(settings: dict[str, Any], **_: Any) -> str:
    """start_Flask_API: make sure the monitor answers; serve it here if nothing does."""
    from adclick_ops.monitor.ensure import ensure_monitor

    return ensure_monitor(Monitor.model_validate(settings))
