"""The pipeline file format, described once.

Each pydantic model is one concept of a `pipelines/*.yaml` file. Field descriptions feed the error
messages, the JSON Schema (`adclick-ops schema`) and the reference page `docs/configuration.md`.
This module imports nothing of Airflow, scikit-learn or the rest of the package but the vocabulary.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from adclick_ops.config.vocabulary import (
    AIRFLOW_URL,
    ENV_AIRFLOW_URL,
    ENV_MONITOR_HOST,
    ENV_MONITOR_PORT,
    ESTIMATOR_PARAMS,
    ESTIMATORS,
    MONITOR_HOST,
    MONITOR_PORT,
    MONITOR_URL,
    PROMOTION_METRIC,
    SCALERS,
    TRAINING_DAG_ID,
    EstimatorName,
    FailRun,
    MetricName,
    ScalerName,
)

# --- the allow-lists: what a pipeline file may name -------------------------------------------

PYTHON_OPERATOR = "airflow.providers.standard.operators.python.PythonOperator"
EMPTY_OPERATOR = "airflow.providers.standard.operators.empty.EmptyOperator"
TRIGGER_OPERATOR = "airflow.providers.standard.operators.trigger_dagrun.TriggerDagRunOperator"
EMAIL_OPERATOR = "airflow.providers.smtp.operators.smtp.EmailOperator"
REPORT_EMAIL_OPERATOR = "adclick_ops.operators.ReportEmailOperator"

OPERATORS: dict[str, str] = {
    PYTHON_OPERATOR: "runs one of the adclick_ops step functions",
    EMPTY_OPERATOR: "does nothing; a join point or a placeholder",
    TRIGGER_OPERATOR: "triggers the DAG named in `trigger`",
    REPORT_EMAIL_OPERATOR: "the SMTP provider's EmailOperator sending the run report to `notify.email`, HTML with a plain-text part",
    EMAIL_OPERATOR: "the SMTP provider's EmailOperator as it is: the run report to `notify.email`, HTML only",
}

# python_callable -> the section of the DAG settings it needs
TRAINING_CALLABLES = (
    "adclick_ops.tasks.load_data",
    "adclick_ops.tasks.preprocess",
    "adclick_ops.tasks.separate_data_outputs",
    "adclick_ops.tasks.build_save_model",
    "adclick_ops.tasks.load_model",
)
MONITOR_CALLABLES = ("adclick_ops.tasks.start_flask_api",)
CALLABLES: tuple[str, ...] = TRAINING_CALLABLES + MONITOR_CALLABLES

TRIGGER_RULES = (
    "all_success",
    "all_failed",
    "all_done",
    "all_done_min_one_success",
    "all_skipped",
    "one_success",
    "one_failed",
    "one_done",
    "none_failed",
    "none_failed_min_one_success",
    "none_skipped",
    "always",
)

DAG_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,250}$"
TASK_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,250}$"
EMAIL_PATTERN = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
SCHEMA_URL = "../schema/pipeline.schema.json"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_path(value: str, what: str) -> str:
    """Paths are relative to the project root or absolute; a relative one may not climb out of it."""
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL byte")
    path = value.removeprefix("file://")
    if "://" not in path and not path.startswith("/") and ".." in re.split(r"[\\/]", path):
        raise ValueError(f"{what} {value!r} climbs out of the project with '..'; give a path inside the project or an absolute one")
    return value


def _no_duplicates(values: list[str], what: str) -> list[str]:
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise ValueError(f"{what} listed more than once: {', '.join(map(repr, dupes))}; list each once")
    return values


# --- DAG-level pieces ---------------------------------------------------------------------------


class DefaultArgs(Model):
    """Airflow `default_args` applied to every task of the DAG."""

    owner: str = Field("adclick-ops", min_length=1, description="Owner shown in the Airflow UI.")
    retries: int = Field(1, ge=0, le=10, description="How many times a failed task is retried.")
    retry_delay_sec: int = Field(60, ge=0, le=86_400, description="Seconds between two tries of a task.")
    execution_timeout_secs: int | None = Field(
        None, gt=0, le=86_400 * 7, description="A try that runs longer than this many seconds fails; none by default."
    )


class Defaults(Model):
    """`pipelines/defaults.yaml`: settings shared by every pipeline file (a DAG's own values win)."""

    default_args: DefaultArgs = Field(default_factory=DefaultArgs, description="Default task arguments for every DAG.")


class Split(Model):
    """How rows are divided between training and test."""

    test_size: float = Field(0.3, gt=0, lt=1, description="Share of the rows kept for the test set, between 0 and 1 (exclusive).")
    random_state: int | None = Field(42, ge=0, le=2**32 - 1, description="Seed of the shuffle; the same seed gives the same split.")
    stratify: bool = Field(False, description="Keep the share of each class equal in the training and test sets.")


class Estimator(Model):
    """The scikit-learn classifier that is trained."""

    name: EstimatorName = Field("logistic_regression", description=f"Which classifier: {', '.join(ESTIMATORS)}.")
    params: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Parameters passed to the classifier, by their scikit-learn names."
    )

    @model_validator(mode="after")
    def _known_params(self) -> Estimator:
        allowed = ESTIMATOR_PARAMS[self.name]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for {self.name}; expected some of: {', '.join(allowed)}"
            )
        return self


class Promotion(Model):
    """When a newly trained model version becomes the champion that serves predictions (docs/models.md)."""

    metric: MetricName = Field(
        PROMOTION_METRIC,
        description="Test-set metric on which a new version must beat the champion, re-scored on the same test set.",
    )
    min_improvement: float = Field(
        0.0,
        ge=0,
        le=1,
        description="How much the new version must beat the champion by on `metric`; with 0 it must be strictly better (a tie keeps the champion).",
    )
    min_accuracy: float | None = Field(None, ge=0, le=1, description="Floor: a version whose test accuracy is below this is not promoted.")
    min_roc_auc: float | None = Field(None, ge=0, le=1, description="Floor: a version whose test ROC AUC is below this is not promoted.")
    fail_run: FailRun = Field(
        "never",
        description=(
            "Whether a version that is not promoted fails the run: never (the run succeeds and says why), "
            "below_floor (only when it misses a floor), always."
        ),
    )


class Training(Model):
    """What the training tasks read, fit and write."""

    dataset: str = Field(
        "dags/data/advertising.csv", description="CSV file with the features and the target, relative to the project root or absolute."
    )
    target: str = Field("Clicked on Ad", min_length=1, description="Column holding the 0/1 label to predict.")
    features: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"],
        min_length=1,
        description="Numeric columns used as model inputs, in order; at least one, no duplicates.",
    )
    split: Split = Field(default_factory=Split, description="The train/test split.")
    scalers: list[ScalerName] = Field(
        default_factory=lambda: ["minmax", "standard"],
        description=(
            "Scalers applied side by side to the features, their outputs concatenated, in order; "
            f"choose from {', '.join(SCALERS)}. An empty list means no scaling."
        ),
    )
    estimator: Estimator = Field(default_factory=Estimator, description="The classifier and its parameters.")
    min_accuracy: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "Earlier spelling of `promotion: {min_accuracy: ..., fail_run: below_floor}`: a version whose test accuracy "
            "is below this is not promoted and the run fails. Not together with `promotion`."
        ),
    )
    promotion: Promotion | None = Field(
        None,
        description=f"The promotion gates a new version must pass to become champion; by default it must beat the champion's {PROMOTION_METRIC}.",
    )
    model_dir: str = Field(
        "model",
        description="Folder of the model registry (`registry/<dag_id>/`) and of the champion's copy; relative to the project root, "
        "absolute, or a URI such as s3://bucket/prefix.",
    )
    model_file: str = Field(
        "model.sav", pattern=r"^[A-Za-z0-9_.\-]+$", description="File name of the champion's copy in `model_dir` (a skops file)."
    )
    artifacts_root: str = Field(
        "runs", description="Where each run keeps its working files, in a folder of its own: a path, or a URI such as s3://bucket/prefix."
    )

    # Relative to the project root in the file; the factory makes them absolute for the tasks.
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("dataset", "model_dir", "artifacts_root")

    @field_validator(*PATH_FIELDS)
    @classmethod
    def _paths(cls, v: str, info: ValidationInfo) -> str:
        return _relative_path(v, info.field_name)

    @field_validator("model_file")
    @classmethod
    def _model_file(cls, v: str) -> str:
        if v in (".", ".."):
            raise ValueError("model_file must be a file name")
        return v

    @field_validator("features", "scalers")
    @classmethod
    def _unique(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return _no_duplicates(v, info.field_name)

    @model_validator(mode="after")
    def _target_not_feature(self) -> Training:
        if self.target in self.features:
            raise ValueError(f"the target {self.target!r} is also listed in features; a model may not learn from its label")
        return self

    @model_validator(mode="after")
    def _one_gate_spelling(self) -> Training:
        if self.min_accuracy is not None and self.promotion is not None:
            raise ValueError(
                "training.min_accuracy and training.promotion are both set; "
                f"move it into the promotion section as promotion.min_accuracy: {self.min_accuracy:g}"
            )
        return self

    def gates(self) -> Promotion:
        """The promotion gates in force: `promotion`, else `min_accuracy` in its earlier spelling, else the defaults."""
        if self.promotion is not None:
            return self.promotion
        if self.min_accuracy is not None:
            return Promotion(min_accuracy=self.min_accuracy, fail_run="below_floor")
        return Promotion()

    def gates_field(self) -> str:
        """The YAML field that set the gates in force, for messages (`training` for the earlier `min_accuracy`)."""
        return "training" if self.promotion is None and self.min_accuracy is not None else "training.promotion"


class TrainingJob(Training):
    """The `training` section as its tasks receive it: paths made absolute (or URIs), and the DAG it belongs to."""

    dag_id: str = Field(pattern=DAG_ID_PATTERN, description="The DAG whose runs these settings drive.")
    pipeline_file: str | None = Field(None, description="The pipeline file that declares the DAG; each model card keeps its text.")


class EmailNotification(Model):
    """Who is told about a run, and how."""

    to: list[str] = Field(min_length=1, description="Recipients' e-mail addresses (at least one).")
    subject: str = Field(
        "[adclick-ops] {{ dag.dag_id }} run {{ run_id }}",
        min_length=1,
        description="Subject line; Airflow templates such as {{ run_id }} are filled in.",
    )
    conn_id: str = Field(
        "smtp_default", pattern=r"^[A-Za-z0-9_.\-]+$", description="Airflow connection holding the SMTP server's settings."
    )
    on_failure: bool = Field(True, description="Also e-mail the recipients when a task of the DAG fails.")
    monitor_url: str = Field(MONITOR_URL, pattern=r"^https?://", description="Link to the Flask monitor given in the report.")

    @field_validator("to")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not EMAIL_PATTERN.match(a)]
        if bad:
            raise ValueError(f"not an e-mail address: {', '.join(map(repr, bad))}; expected name@domain.tld")
        return v


class Notify(Model):
    """Notifications sent by the DAG."""

    email: EmailNotification = Field(description="E-mail report of each run and failure alerts.")


class Trigger(Model):
    """The DAG triggered at the end of a run."""

    dag_id: str = Field(pattern=DAG_ID_PATTERN, description="DAG to trigger; it must be declared in pipelines/ unless `external` is true.")
    conf: dict[str, str] = Field(
        default_factory=lambda: {"upstream_dag_id": "{{ dag.dag_id }}", "upstream_run_id": "{{ run_id }}"},
        description="Configuration handed to the triggered run; values may use Airflow templates.",
    )
    external: bool = Field(False, description="Set to true when `dag_id` is defined outside pipelines/.")


class Monitor(Model):
    """Where the Flask monitor listens and which Airflow it reads (environment variables override)."""

    host: str = Field(MONITOR_HOST, min_length=1, description=f"Interface to listen on ({ENV_MONITOR_HOST} overrides).")
    port: int = Field(MONITOR_PORT, ge=1, le=65535, description=f"Port to listen on ({ENV_MONITOR_PORT} overrides).")
    airflow_url: str = Field(
        AIRFLOW_URL, pattern=r"^https?://", description=f"Base URL of the Airflow API server ({ENV_AIRFLOW_URL} overrides)."
    )
    dag_id: str = Field(TRAINING_DAG_ID, pattern=DAG_ID_PATTERN, description="The training DAG whose runs the monitor shows.")
    serve_for: int | None = Field(
        None, gt=0, description="Seconds the task serves the monitor before it succeeds; none means until the task is stopped."
    )


class Task(Model):
    """One task of the graph, spelled as dag-factory spells it."""

    operator: str = Field(description="Import path of the operator; one of the allow-listed operators.")
    python_callable: str | None = Field(None, description="For PythonOperator: the adclick_ops step function to run.")
    dependencies: list[str] = Field(default_factory=list, description="Task ids of this DAG that must finish first.")
    trigger_rule: str | None = Field(
        None, description="When the task runs given its upstream states (Airflow trigger rule); all_success by default."
    )
    retries: int | None = Field(None, ge=0, le=10, description="Overrides default_args.retries for this task.")
    retry_delay_sec: int | None = Field(None, ge=0, le=86_400, description="Overrides default_args.retry_delay_sec for this task.")
    execution_timeout_secs: int | None = Field(None, gt=0, le=86_400 * 7, description="A try that runs longer fails.")
    doc_md: str | None = Field(None, description="Documentation shown in the Airflow UI for this task.")

    @field_validator("operator")
    @classmethod
    def _allowed_operator(cls, v: str) -> str:
        if v not in OPERATORS:
            raise ValueError(f"operator {v!r} is not allowed; expected one of: {', '.join(OPERATORS)}")
        return v

    @field_validator("python_callable")
    @classmethod
    def _allowed_callable(cls, v: str | None) -> str | None:
        if v is not None and v not in CALLABLES:
            raise ValueError(f"python_callable {v!r} is not allowed; expected one of: {', '.join(CALLABLES)}")
        return v

    @field_validator("trigger_rule")
    @classmethod
    def _known_rule(cls, v: str | None) -> str | None:
        if v is not None and v not in TRIGGER_RULES:
            raise ValueError(f"unknown trigger_rule {v!r}; expected one of: {', '.join(TRIGGER_RULES)}")
        return v

    @field_validator("dependencies")
    @classmethod
    def _unique_deps(cls, v: list[str]) -> list[str]:
        return _no_duplicates(v, "dependencies")

    @model_validator(mode="after")
    def _callable_matches_operator(self) -> Task:
        if self.operator == PYTHON_OPERATOR and not self.python_callable:
            raise ValueError("a PythonOperator task needs python_callable")
        if self.operator != PYTHON_OPERATOR and self.python_callable:
            raise ValueError(f"python_callable is only for PythonOperator, not {self.operator.rsplit('.', 1)[-1]}")
        return self


class Dag(Model):
    """One DAG: its Airflow settings, its graph and the knobs its tasks read."""

    description: str | None = Field(None, description="Shown in the Airflow UI.")
    schedule: str | None = Field(None, description="Cron expression or preset such as @daily; none for a DAG that is only triggered.")
    catchup: bool = Field(False, description="Run the intervals missed since start_date.")
    max_active_runs: int = Field(1, ge=1, le=64, description="How many runs of this DAG may be active at once.")
    start_date: dt.date | dt.datetime = Field(dt.date(2024, 1, 1), description="First logical date of the schedule (UTC).")
    tags: list[str] = Field(default_factory=list, description="Tags shown in the Airflow UI.")
    is_paused_upon_creation: bool | None = Field(None, description="Whether Airflow creates the DAG paused (Airflow's setting by default).")
    default_args: DefaultArgs | None = Field(None, description="Task defaults; merged over pipelines/defaults.yaml.")
    training: Training | None = Field(None, description="Settings of the training steps; needed by the training tasks.")
    notify: Notify | None = Field(None, description="Notifications; needed by an EmailOperator task.")
    trigger: Trigger | None = Field(None, description="Downstream DAG; needed by a TriggerDagRunOperator task.")
    monitor: Monitor | None = Field(None, description="The Flask monitor; needed by the start_flask_api task.")
    tasks: dict[Annotated[str, Field(pattern=TASK_ID_PATTERN)], Task] = Field(
        min_length=1, description="The tasks by id, each with its operator and dependencies."
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        if v is None:
            return v
        presets = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually")
        if v.startswith("@"):
            if v not in presets:
                raise ValueError(f"unknown schedule preset {v!r}; expected a cron expression or one of: {', '.join(presets)}")
        elif len(v.split()) not in (5, 6):
            raise ValueError(f"schedule {v!r} is neither a preset nor a 5-field cron expression")
        return v

    def graph_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Checks across tasks, each with the location (field path inside the DAG) it is about."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for task_id, task in self.tasks.items():
            for i, dep in enumerate(task.dependencies):
                loc = ("tasks", task_id, "dependencies", i)
                if dep == task_id:
                    problems.append((loc, f"task {task_id!r} depends on itself"))
                elif dep not in self.tasks:
                    problems.append((loc, f"{dep!r} is not a task of this DAG; expected one of: {', '.join(self.tasks)}"))
        cycle = _find_cycle({t: [d for d in s.dependencies if d in self.tasks and d != t] for t, s in self.tasks.items()})
        if cycle:
            problems.append((("tasks", cycle[0], "dependencies"), f"the tasks form a cycle: {' -> '.join(cycle)}"))
        needs = {
            "training": [t for t, s in self.tasks.items() if s.python_callable in TRAINING_CALLABLES],
            "monitor": [t for t, s in self.tasks.items() if s.python_callable in MONITOR_CALLABLES],
            "notify": [t for t, s in self.tasks.items() if s.operator in (EMAIL_OPERATOR, REPORT_EMAIL_OPERATOR)],
            "trigger": [t for t, s in self.tasks.items() if s.operator == TRIGGER_OPERATOR],
        }
        for section, users in needs.items():
            if users and getattr(self, section) is None:
                problems.append((("tasks", users[0]), f"task(s) {', '.join(users)} need a `{section}` section in this DAG; it is missing"))
        return problems


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in task -> upstream edges, as a list of task ids, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return list(reversed(found))
    return None
