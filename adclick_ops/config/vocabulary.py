"""The words that pipeline files, steps, e-mails, the monitor and the CLI share, each defined once.

Renaming a scaler, an estimator or a metric, or adding one, starts here; the step that implements
it is the only other place (tests/config/test_vocabulary.py fails when the two disagree). This
module imports nothing but the standard library.
"""

from __future__ import annotations

from typing import Literal, get_args

# --- what the training steps can do ---------------------------------------------------------------

ScalerName = Literal["minmax", "standard", "robust", "maxabs"]
SCALERS: tuple[ScalerName, ...] = get_args(ScalerName)

EstimatorName = Literal["logistic_regression", "random_forest", "gradient_boosting"]
ESTIMATORS: tuple[EstimatorName, ...] = get_args(EstimatorName)

# The scikit-learn parameters a pipeline file may set on each estimator.
ESTIMATOR_PARAMS: dict[EstimatorName, tuple[str, ...]] = {
    "logistic_regression": (
        "C",
        "penalty",
        "solver",
        "max_iter",
        "tol",
        "fit_intercept",
        "class_weight",
        "l1_ratio",
        "random_state",
    ),
    "random_forest": (
        "n_estimators",
        "criterion",
        "max_depth",
        "min_samples_split",
        "min_samples_leaf",
        "max_features",
        "bootstrap",
        "class_weight",
        "random_state",
        "n_jobs",
    ),
    "gradient_boosting": (
        "n_estimators",
        "learning_rate",
        "max_depth",
        "subsample",
        "min_samples_split",
        "min_samples_leaf",
        "max_features",
        "random_state",
    ),
}

# Metric names as load_model_task returns them, with the label people read (e-mail, monitor, CLI).
MetricName = Literal["accuracy", "precision", "recall", "f1", "roc_auc"]
METRIC_LABELS: dict[MetricName, str] = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "roc_auc": "ROC AUC",
}
METRICS: tuple[MetricName, ...] = get_args(MetricName)
# What a run reports of its test set: the metrics, the confusion matrix [[tn, fp], [fn, tp]] and the number of rows.
METRIC_KEYS: tuple[str, ...] = (*METRICS, "confusion_matrix", "n_test")

# --- promotion: when a newly trained version becomes the champion that serves predictions --------

# The metric a new version must beat the champion on, unless training.promotion.metric says otherwise.
PROMOTION_METRIC: MetricName = "roc_auc"
# Whether a version that is not promoted fails the run.
FailRun = Literal["never", "below_floor", "always"]
# What happens when the champion cannot be scored on the held-out rows (its columns are gone, its file fails its checks).
OnIncomparable = Literal["keep", "promote"]
# The share of the dataset's rows held out from training, chosen by a hash of each row's content (docs/models.md).
HOLDOUT_SHARE = 0.2

# --- what happens to a DAG when a valid pipeline file stops validating ----------------------------

# keep_last_good: the DAG goes on from the last valid version of its file; stop: the DAG goes.
OnInvalid = Literal["keep_last_good", "stop"]
ON_INVALID: tuple[OnInvalid, ...] = get_args(OnInvalid)
# The tag of a DAG rendered from the last valid version of its file.
LAST_GOOD_TAG = "last-good"
# How the import error of a broken pipeline file begins, and how its last line says what runs instead
# (or why nothing does); how the docs of a kept DAG open. The monitor reads them through Airflow's REST API.
INVALID_FILE_HEADLINE = "ConfigError: invalid pipeline file"
RUNS_MARKER = "The last valid version of this file runs instead:"
NOT_RUN_MARKER = "No version of this file runs:"
LAST_GOOD_DOCS_OPENING = "**Running the last valid version of "

# --- names the e-mail, the monitor and the run command rely on ----------------------------------

TRAINING_DAG_ID = "Airflow_Lab2"
MONITOR_DAG_ID = "Airflow_Lab2_Flask"
# The task whose XCom holds the run's record (adclick_ops.record.TrainingRecord; the e-mail, the monitor and the CLI read it there).
METRICS_TASK_ID = "load_model_task"
# The XCom keys, each spelled once: the record is that task's return value; a failed task pushes its failure.
XCOM_RECORD_KEY = "return_value"
XCOM_FAILURE_KEY = "failure"

# --- the monitor's and Airflow's addresses, and the variables that override them -----------------

MONITOR_HOST = "127.0.0.1"
MONITOR_PORT = 5555
MONITOR_URL = f"http://localhost:{MONITOR_PORT}"
AIRFLOW_PORT = 8080
AIRFLOW_URL = f"http://localhost:{AIRFLOW_PORT}"

ENV_MONITOR_HOST = "ADCLICK_MONITOR_HOST"
ENV_MONITOR_PORT = "ADCLICK_MONITOR_PORT"
ENV_AIRFLOW_URL = "ADCLICK_AIRFLOW_URL"
ENV_PIPELINES = "ADCLICK_OPS_PIPELINES"
ENV_MODEL_DIR = "ADCLICK_MODEL_DIR"  # the model folder whose registry the monitor serves from
ENV_PROJECT_ROOT = "ADCLICK_OPS_HOME"
ENV_LAST_GOOD = "ADCLICK_OPS_LAST_GOOD"  # the folder of the last valid versions of the pipeline files

# Where a path of a pipeline file may point besides the local disk: object storage, through fsspec.
# Never a web address: a worker would fetch whatever it names.
STORAGE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory")
