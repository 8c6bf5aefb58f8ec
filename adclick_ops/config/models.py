"""The pipeline file format, described once.

Each pydantic model is one concept of a `pipelines/*.yaml` file. Field descriptions feed the error
messages, the JSON Schema (`adclick-ops schema`) and the reference page `docs/configuration.md`.
This module imports nothing of Airflow, scikit-learn or the rest of the package but the vocabulary.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from adclick_ops.config.locations import NESTED_PATTERN, SCHEME_PATTERN, LocationError, normalize_location
from adclick_ops.config.schedules import (
    DATE_PATTERN,
    DATETIME_PATTERN,
    ONE_RUN_AT_A_TIME,
    PRESETS,
    parse_start_date,
    schedule_problem,
)
from adclick_ops.config.templating import (
    LOOKALIKE_PATTERN,
    NO_TEMPLATE_PATTERN,
    SHOWN,
    SUBJECT_NAMES,
    SUBJECT_SHOWN,
    template_problem,
    template_schema,
)
from adclick_ops.config.vocabulary import (
    AIRFLOW_URL,
    ENV_AIRFLOW_URL,
    ENV_MONITOR_HOST,
    ENV_MONITOR_PORT,
    ESTIMATOR_PARAMS,
    ESTIMATORS,
    HOLDOUT_SHARE,
    LAST_GOOD_TAG,
    MONITOR_HOST,
    MONITOR_PORT,
    MONITOR_URL,
    PROMOTION_METRIC,
    SCALERS,
    STORAGE_SCHEMES,
    TRAINING_DAG_ID,
    EstimatorName,
    FailRun,
    MetricName,
    OnIncomparable,
    OnInvalid,
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
    EMAIL_OPERATOR: "the run report to `notify.email`, HTML only, sent by the SMTP provider's EmailOperator code (the task runs as ReportEmailOperator without a text part, which renders the report's template files; the Airflow UI shows that class)",
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
RESERVED_DAG_IDS = ("default", "task_groups")  # dag-factory's own top-level keys
# An address as mail servers take it, without the quoting and braces RFC 5322 also allows: a
# recipient is a plain address, never a template.
EMAIL_REGEX = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`|~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
EMAIL_PATTERN = re.compile(EMAIL_REGEX)
# The same address for JSON Schema, in patterns without a quantifier inside another (EMAIL_REGEX has
# one: check-jsonschema's ECMA-262 engine ran past a minute on a 12 KB address of 200 labels):
# local part, '@', then a domain of letters, digits, '-' and '.', with a '.' in it, whose labels are 1
# to 63 characters and neither start nor end with '-'. maxLength bounds it as the format does.
EMAIL_SCHEMA: dict[str, Any] = {
    "maxLength": 254,
    "pattern": r"^[A-Za-z0-9.!#$%&'*+/=?^_`|~-]+@[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9]$",
    "allOf": [{"pattern": r"@[A-Za-z0-9-]+\."}],
    "not": {"pattern": r"@(?:[^@]*(?:\.\.|\.-|-\.)|[^@]*[A-Za-z0-9-]{64})"},
}
TAG_MAX_LEN = 100  # Airflow's limit (airflow.sdk.definitions.dag.TAG_MAX_LEN)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
# Characters no text of a pipeline file holds, as character-class bodies that Python's re, the ECMA-262 engine of
# check-jsonschema and JavaScript read alike: the ASCII and C1 control characters (PostgreSQL, where Airflow keeps DAG
# tags, descriptions and docs, cannot store NUL; the others are invisible or break lines in the UI and in mail), and
# lone surrogates, which have no UTF-8 spelling. Text of several lines (descriptions, docs) keeps tab, line feed and
# carriage return; one-line text (tags, owner, subject, addresses) has none of them.
LINE_CONTROL = r"\x00-\x1f\x7f-\x9f\ud800-\udfff"
TEXT_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"
_CONTROL = LINE_CONTROL
# ECMA-262's \s (JSON Schema patterns), which Python's \s does not quite match (U+FEFF): spelled out for both.
SPACES = r"\t-\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
WEB_URL_PATTERN = "^https?://[^" + SPACES + LINE_CONTROL + "<>\"'`{}\\\\]+$"
# The largest finite number: a number field of the JSON Schema is bounded by it where the model has no bound, so
# that .inf and -.inf are refused as validate refuses them.
FLOAT_MAX = 1.7976931348623157e308
SCHEMA_URL = "../schema/pipeline.schema.json"


class Model(BaseModel):
    # strict: a value is the type the field says, never converted (no "3" for 3, no 1 for true); numbers are finite
    # (no .nan, .inf or -.inf), and an integer is a number without a fraction, however it is written (`Integer`).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _integral(value: Any) -> Any:
    """1.0 is the integer 1, as JSON and the JSON Schema read it (they cannot tell the two apart)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field: an integral number written 1.0 or 1e3 is that integer; 1.5, true and "1" are refused.
Integer = Annotated[int, BeforeValidator(_integral)]
OptionalInteger = Annotated[int | None, BeforeValidator(_integral)]  # the bounds of its Field apply to the integer


# --- text: what a string field may hold ----------------------------------------------------------


def control_problem(value: str, control: str = TEXT_CONTROL) -> str | None:
    """Why `value` may not be stored as text (None when it may): a character of the class `control`."""
    found = re.search(f"[{control}]", value)
    if found is None:
        return None
    char = found.group()
    kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "the control character"
    why = ", which Airflow's metadata database (PostgreSQL) cannot store" if char == "\x00" else ""
    allowed = (
        "one line of text without control characters"
        if control == LINE_CONTROL
        else "text without control characters but tab and line breaks"
    )
    return f"found {kind} U+{ord(char):04X} at character {found.start() + 1} of {value!r}{why}; expected {allowed}"


def _plain_text(value: str) -> str:
    problem = control_problem(value) or template_problem(value, placeholders=False)
    if problem:
        raise ValueError(problem)
    return value


def _template_text(value: str) -> str:
    problem = control_problem(value) or template_problem(value, placeholders=True)
    if problem:
        raise ValueError(problem)
    return value


def _subject_text(value: str) -> str:
    problem = template_problem(value, placeholders=True, names=SUBJECT_NAMES)
    if problem:
        raise ValueError(problem)
    return value


def _one_line(value: str) -> str:
    problem = control_problem(value, LINE_CONTROL)
    if problem:
        raise ValueError(problem)
    return value


def _email(value: str) -> str:
    if len(value) > 254 or not EMAIL_PATTERN.fullmatch(value):
        raise ValueError(f"not an e-mail address: {value!r}; expected a plain address such as name@example.com")
    return value


def _web_url(value: str) -> str:
    parts = urlsplit(value) if re.fullmatch(WEB_URL_PATTERN, value) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"found {value!r}; expected an http:// or https:// address without spaces, quotes, braces or '<>'")
    return value


# Every string of a pipeline file is one of these (tests/config/test_models.py checks that no bare
# str is left): Text is never a template, TemplateText may hold the placeholders only; neither holds a control
# character but tab and line breaks, nor a look-alike of template syntax. Line is Text of one line.
TEXT_REFUSALS: list[dict[str, Any]] = [{"pattern": NO_TEMPLATE_PATTERN}, {"pattern": LOOKALIKE_PATTERN}, {"pattern": f"[{TEXT_CONTROL}]"}]
NO_TEMPLATE: dict[str, Any] = {"not": {"anyOf": TEXT_REFUSALS}}
LINE_SCHEMA: dict[str, Any] = {"not": {"anyOf": [*TEXT_REFUSALS[:2], {"pattern": f"[{LINE_CONTROL}]"}]}}
Text = Annotated[str, AfterValidator(_plain_text), Field(json_schema_extra=NO_TEMPLATE)]
Line = Annotated[str, AfterValidator(_plain_text), AfterValidator(_one_line), Field(json_schema_extra=LINE_SCHEMA)]
TemplateText = Annotated[str, AfterValidator(_template_text), Field(json_schema_extra=template_schema(TEXT_CONTROL))]
# The report's subject: the placeholders above and the report's own ({{ status }}, {{ metric }}, {{ version }}).
Subject = Annotated[
    str,
    AfterValidator(_subject_text),
    AfterValidator(_one_line),
    Field(json_schema_extra=template_schema(_CONTROL, SUBJECT_NAMES)),
]
EmailAddress = Annotated[str, AfterValidator(_email), Field(json_schema_extra=EMAIL_SCHEMA)]
WebUrl = Annotated[
    str,
    AfterValidator(_plain_text),
    AfterValidator(_web_url),
    Field(json_schema_extra={"pattern": WEB_URL_PATTERN, "not": {"pattern": LOOKALIKE_PATTERN}}),
]
Id = Annotated[str, Field(pattern=DAG_ID_PATTERN)]


def _relative_path(value: str, what: str) -> str:
    """A local path inside the project (relative, or absolute: checked against the project in the catalog) or a storage URI,
    in the one spelling the tasks read (config.locations)."""
    try:
        normalized = normalize_location(value, what)
    except LocationError as exc:
        raise ValueError(str(exc)) from None
    if ".." in re.split(r"[\\/]", value):
        raise ValueError(f"{what} {value!r} climbs out of the project with '..'; give a path inside the project or a storage URI")
    return normalized


PATH_SCHEMA: dict[str, Any] = {
    "minLength": 1,
    "pattern": r"\S",
    "not": {"anyOf": [{"pattern": r"(^|[\\/])\.\.([\\/]|$)"}, *TEXT_REFUSALS]},
    "anyOf": [
        {"not": {"anyOf": [{"pattern": r"^[A-Za-z][A-Za-z0-9+.\-]+:"}, {"pattern": "://"}]}},
        {"pattern": SCHEME_PATTERN, "not": {"pattern": NESTED_PATTERN}},
    ],
}


def _no_duplicates(values: list[Any], what: str) -> list[Any]:
    counts = Counter(values)
    dupes = sorted(v for v, n in counts.items() if n > 1)
    if dupes:
        raise ValueError(f"{what} listed more than once: {one_of(dupes)}; list each once")
    return values


def one_of(values: Any, limit: int = 12) -> str:
    """A list for a message: at most `limit` items shown, one line whatever the list's length."""
    items = [repr(v) for v in values]
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


# --- DAG-level pieces ---------------------------------------------------------------------------


class DefaultArgs(Model):
    """Airflow `default_args` applied to every task of the DAG."""

    owner: Line = Field("adclick-ops", min_length=1, description="Owner shown in the Airflow UI.")
    retries: Integer = Field(1, ge=0, le=10, description="How many times a failed task is retried.")
    retry_delay_sec: Integer = Field(60, ge=0, le=86_400, description="Seconds between two tries of a task.")
    execution_timeout_secs: OptionalInteger = Field(
        None, gt=0, le=86_400 * 7, description="A try that runs longer than this many seconds fails; none by default."
    )


class Defaults(Model):
    """`pipelines/defaults.yaml`: settings shared by every pipeline file (a DAG's own values win)."""

    default_args: DefaultArgs = Field(default_factory=DefaultArgs, description="Default task arguments for every DAG.")


class Split(Model):
    """How rows are divided between training and test."""

    test_size: float = Field(0.3, gt=0, lt=1, description="Share of the rows kept for the test set, between 0 and 1 (exclusive).")
    random_state: OptionalInteger = Field(42, ge=0, le=2**32 - 1, description="Seed of the shuffle; the same seed gives the same split.")
    stratify: bool = Field(False, description="Keep the share of each class equal in the training and test sets.")


# scikit-learn takes C .inf (no regularisation): its own rules, not the models', decide on infinities in params.
ParamFloat = Annotated[float, Field(allow_inf_nan=True)]


class Estimator(Model):
    """The scikit-learn classifier that is trained."""

    name: EstimatorName = Field("logistic_regression", description=f"Which classifier: {', '.join(ESTIMATORS)}.")
    params: dict[str, Text | int | ParamFloat | bool | None] = Field(
        default_factory=dict,
        description=(
            "Parameters passed to the classifier, by their scikit-learn names; `adclick-ops validate` checks the values "
            "with scikit-learn's own rules, from the table generated from scikit-learn (adclick_ops/config/estimator_rules.json)."
        ),
    )

    @field_validator("params")
    @classmethod
    def _json_numbers(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Each number as the type its parameter takes, where that is one of integer and float only (see as_json_reads)."""
        from adclick_ops.config.estimator_rules import as_json_reads

        name = info.data.get("name")
        return {p: as_json_reads(name, p, v) for p, v in params.items()} if name in ESTIMATOR_PARAMS else params

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
    holdout: float = Field(
        HOLDOUT_SHARE,
        gt=0,
        lt=1,
        description=(
            "Share of the dataset's rows that no version trains on, chosen by a hash of each row's content; the new version "
            "and the champion are compared on the held-out rows that neither trained on."
        ),
    )
    on_incomparable: OnIncomparable = Field(
        "keep",
        description=(
            "When the champion cannot be scored on the held-out rows (its columns are gone from the dataset, its file fails "
            "its checks): keep it and say why, or promote the new version if it meets the floors."
        ),
    )


class Training(Model):
    """What the training tasks read, fit and write."""

    dataset: Text = Field(
        "dags/data/advertising.csv",
        description=(
            "CSV file with the features and the target: a path in the project (relative to its root, or absolute inside it), "
            f"or an object-storage URI ({', '.join(s + '://' for s in STORAGE_SCHEMES)}); never a web address."
        ),
        json_schema_extra=PATH_SCHEMA,
    )
    target: Text = Field("Clicked on Ad", min_length=1, description="Column holding the 0/1 label to predict.")
    features: list[Annotated[str, StringConstraints(min_length=1), AfterValidator(_plain_text), Field(json_schema_extra=NO_TEMPLATE)]] = (
        Field(
            default_factory=lambda: ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"],
            min_length=1,
            description="Numeric columns used as model inputs, in order; at least one, no duplicates.",
            json_schema_extra={"uniqueItems": True},
        )
    )
    split: Split = Field(default_factory=Split, description="The train/test split.")
    scalers: list[ScalerName] = Field(
        default_factory=lambda: ["minmax", "standard"],
        description=(
            "Scalers applied side by side to the features, their outputs concatenated, in order; "
            f"choose from {', '.join(SCALERS)}. An empty list means no scaling."
        ),
        json_schema_extra={"uniqueItems": True},
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
    model_dir: Text = Field(
        "model",
        description="Folder of the model registry (`registry/<dag_id>/`) and of the champion's copy: a path relative to the "
        "project root, an absolute path, or an object-storage URI; not in the project's own folders (dags/, config/, "
        "adclick_ops/, schema/, the pipeline files' folder and last-good/).",
        json_schema_extra=PATH_SCHEMA,
    )
    model_file: Text = Field(
        "model.sav",
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="File name of the champion's copy in `model_dir`: an ONNX file, whatever the name ends with. A file "
        "already there that the registry did not write is never replaced; the run says so.",
        json_schema_extra={"not": {"enum": [".", ".."]}},
    )
    artifacts_root: Text = Field(
        "runs",
        description="Where each run keeps its working files, in a folder of its own: a path, or an object-storage URI such as "
        "s3://bucket/prefix; not in the project's own folders, as for model_dir.",
        json_schema_extra=PATH_SCHEMA,
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

    dag_id: Id = Field(description="The DAG whose runs these settings drive.")
    pipeline_file: Text | None = Field(None, description="The pipeline file that declares the DAG; each model card keeps its text.")


DEFAULT_SUBJECT = "[adclick-ops] {{ dag.dag_id }} {{ status }}: {{ metric }}, {{ version }}"


class EmailNotification(Model):
    """Who is told about a run, and how."""

    to: list[EmailAddress] = Field(
        min_length=1,
        description="Recipients' e-mail addresses (at least one, each once): plain addresses, never templates.",
        json_schema_extra={"uniqueItems": True},
    )
    subject: Subject = Field(
        DEFAULT_SUBJECT,
        min_length=1,
        description=f"Subject of the run report, one line; the placeholders {SUBJECT_SHOWN} are filled in, and no other template "
        "syntax is allowed. Failure alerts have their own subject: `[adclick-ops] <dag> failed: <task> (try <n> of <tries>)`.",
    )
    headline_metric: MetricName = Field(
        "accuracy", description="The metric the report's subject (`{{ metric }}`) and its header show first."
    )
    conn_id: str = Field(
        "smtp_default", pattern=r"^[A-Za-z0-9_.\-]{1,250}$", description="Airflow connection holding the SMTP server's settings."
    )
    on_failure: bool = Field(True, description="Also e-mail the recipients when a task of the DAG fails.")
    monitor_url: WebUrl = Field(MONITOR_URL, description="Link to the Flask monitor given in the report (http:// or https://).")

    @field_validator("to")
    @classmethod
    def _unique_addresses(cls, v: list[str]) -> list[str]:
        return _no_duplicates(v, "recipients")


class Notify(Model):
    """Notifications sent by the DAG."""

    email: EmailNotification = Field(description="E-mail report of each run and failure alerts.")


class Trigger(Model):
    """The DAG triggered at the end of a run."""

    dag_id: Id = Field(description="DAG to trigger; it must be declared in pipelines/ unless `external` is true.")
    conf: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,250}$")], TemplateText] = Field(
        default_factory=lambda: {"upstream_dag_id": "{{ dag.dag_id }}", "upstream_run_id": "{{ run_id }}"},
        description=f"Configuration handed to the triggered run; values are text where the placeholders {SHOWN} are filled in.",
    )
    external: bool = Field(False, description="Set to true when `dag_id` is defined outside pipelines/.")


class Monitor(Model):
    """Where the Flask monitor listens and which Airflow it reads (environment variables override)."""

    host: str = Field(
        MONITOR_HOST, pattern=r"^[A-Za-z0-9_.:\-]{1,253}$", description=f"Interface to listen on ({ENV_MONITOR_HOST} overrides)."
    )
    port: Integer = Field(MONITOR_PORT, ge=1, le=65535, description=f"Port to listen on ({ENV_MONITOR_PORT} overrides).")
    airflow_url: WebUrl = Field(AIRFLOW_URL, description=f"Base URL of the Airflow API server ({ENV_AIRFLOW_URL} overrides).")
    dag_id: Id = Field(TRAINING_DAG_ID, description="The training DAG whose runs the monitor shows.")
    serve_for: OptionalInteger = Field(
        None,
        gt=0,
        le=2**31 - 1,
        description="Seconds the task serves the monitor before it succeeds (at most 2147483647); none means until the task is stopped.",
    )


TaskId = Annotated[str, Field(pattern=TASK_ID_PATTERN)]


class Task(Model):
    """One task of the graph, spelled as dag-factory spells it."""

    operator: str = Field(
        description="Import path of the operator; one of the allow-listed operators.", json_schema_extra={"enum": list(OPERATORS)}
    )
    python_callable: str | None = Field(
        None,
        description="For PythonOperator (and only there): the adclick_ops step function to run.",
        json_schema_extra={"enum": [*CALLABLES, None]},
    )
    dependencies: list[TaskId] = Field(
        default_factory=list, description="Task ids of this DAG that must finish first.", json_schema_extra={"uniqueItems": True}
    )
    trigger_rule: str | None = Field(
        None,
        description="When the task runs given its upstream states (Airflow trigger rule); all_success by default.",
        json_schema_extra={"enum": [*TRIGGER_RULES, None]},
    )
    retries: OptionalInteger = Field(None, ge=0, le=10, description="Overrides default_args.retries for this task.")
    retry_delay_sec: OptionalInteger = Field(None, ge=0, le=86_400, description="Overrides default_args.retry_delay_sec for this task.")
    execution_timeout_secs: OptionalInteger = Field(None, gt=0, le=86_400 * 7, description="A try that runs longer fails.")
    doc_md: Text | None = Field(None, description="Documentation shown in the Airflow UI for this task.")

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


def _schedule(value: str | None) -> str | None:
    if value is not None:
        problem = schedule_problem(value)
        if problem:
            raise ValueError(problem)
    return value


StartDate = Annotated[
    dt.date | dt.datetime,
    PlainValidator(parse_start_date),
    # in JSON, as the file may write it (pydantic's union serializer would warn about the validator's own output)
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date", "pattern": DATE_PATTERN},
                {"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN},
            ]
        }
    ),
]
# Five fields of printable ASCII between ASCII blanks, as validate reads a cron expression (its fields never hold more).
_BLANK, _FIELD = r"[\t-\r ]", r"[!-~]+"
CRON_SCHEMA_PATTERN = rf"^{_BLANK}*{_FIELD}{_BLANK}+{_FIELD}{_BLANK}+{_FIELD}{_BLANK}+{_FIELD}{_BLANK}+{_FIELD}{_BLANK}*$"


class Dag(Model):
    """One DAG: its Airflow settings, its graph and the knobs its tasks read."""

    description: Text | None = Field(None, description="Shown in the Airflow UI.")
    schedule: Annotated[str, AfterValidator(_schedule)] | None = Field(
        None,
        description=(
            "A five-field cron expression (minute hour day-of-month month day-of-week) or a preset: "
            f"{', '.join(PRESETS)}; null for a DAG that is only triggered. @continuous needs max_active_runs: 1."
        ),
        json_schema_extra={"anyOf": [{"enum": [*PRESETS, None]}, {"type": "string", "pattern": CRON_SCHEMA_PATTERN}]},
    )
    catchup: bool = Field(False, description="Run the intervals missed since start_date.")
    max_active_runs: Integer = Field(1, ge=1, le=64, description="How many runs of this DAG may be active at once.")
    start_date: StartDate = Field(
        dt.date(2024, 1, 1),
        description=(
            "First logical date of the schedule: a date (2024-01-01, midnight UTC) or a date and time with its time zone "
            "(2024-01-01T06:00:00Z, 2024-01-01T08:00:00+02:00), between 1970-01-01 and 9998-12-31."
        ),
    )
    tags: list[Annotated[Line, StringConstraints(min_length=1, max_length=TAG_MAX_LEN)]] = Field(
        default_factory=list,
        description=f"Tags shown in the Airflow UI: each 1 to {TAG_MAX_LEN} characters, each once.",
        json_schema_extra={"uniqueItems": True},
    )
    is_paused_upon_creation: bool | None = Field(None, description="Whether Airflow creates the DAG paused (Airflow's setting by default).")
    on_invalid: OnInvalid = Field(
        "keep_last_good",
        description=(
            "When a later edit of this file does not validate: keep_last_good renders this DAG from the file's last valid "
            "version (tagged last-good) while Airflow shows the file's errors; stop drops the DAG until the file is fixed. "
            "The setting of the version that runs applies (docs/reliability.md)."
        ),
    )
    default_args: DefaultArgs | None = Field(None, description="Task defaults; merged over pipelines/defaults.yaml.")
    training: Training | None = Field(None, description="Settings of the training steps; needed by the training tasks.")
    notify: Notify | None = Field(None, description="Notifications; needed by an EmailOperator task.")
    trigger: Trigger | None = Field(None, description="Downstream DAG; needed by a TriggerDagRunOperator task.")
    monitor: Monitor | None = Field(None, description="The Flask monitor; needed by the start_flask_api task.")
    tasks: dict[TaskId, Task] = Field(min_length=1, description="The tasks by id, each with its operator and dependencies.")

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, v: list[str]) -> list[str]:
        if LAST_GOOD_TAG in v:
            raise ValueError(
                f"the tag {LAST_GOOD_TAG!r} is set by adclick-ops on a DAG that runs the last valid version of its file; use another tag"
            )
        return _no_duplicates(v, "tags")

    def graph_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Checks across fields and tasks (see `dag_problems`)."""
        return dag_problems(self.model_dump())


# Sections of a DAG and the tasks that need them.
_SECTION_USERS: dict[str, Any] = {
    "training": lambda spec: spec.get("python_callable") in TRAINING_CALLABLES,
    "monitor": lambda spec: spec.get("python_callable") in MONITOR_CALLABLES,
    "notify": lambda spec: spec.get("operator") in (EMAIL_OPERATOR, REPORT_EMAIL_OPERATOR),
    "trigger": lambda spec: spec.get("operator") == TRIGGER_OPERATOR,
}


def _dependency_problems(tasks: dict[str, dict], raw_tasks: Any) -> tuple[list[tuple[tuple[str | int, ...], str]], dict[str, list[str]]]:
    """(problems, the graph of task -> upstream tasks that exist): a task that depends on itself or on no task."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    deps: dict[str, list[str]] = {}
    for task_id, spec in tasks.items():
        listed = spec.get("dependencies")
        deps[task_id] = []
        for i, dep in enumerate(listed if isinstance(listed, list) else []):
            if not isinstance(dep, str):
                continue
            loc = ("tasks", task_id, "dependencies", i)
            if dep == task_id:
                problems.append((loc, f"task {task_id!r} depends on itself"))
            elif raw_tasks is not None and dep not in raw_tasks:
                problems.append((loc, f"{dep!r} is not a task of this DAG; expected one of: {one_of(list(raw_tasks))}"))
            else:
                deps[task_id].append(dep)
    return problems, deps


def dag_problems(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Checks across the fields and tasks of one DAG, on its raw settings, each with the location it is about.

    They read only what they need and skip what has the wrong shape (the field checks report that),
    so that a file's graph errors are reported together with its field errors.
    """
    raw_tasks = body.get("tasks")
    tasks = {t: s for t, s in raw_tasks.items() if isinstance(s, dict)} if isinstance(raw_tasks, dict) else {}
    problems, deps = _dependency_problems(tasks, raw_tasks)
    cycle = _find_cycle(deps)
    if cycle:
        problems.append((("tasks", cycle[0], "dependencies"), f"the tasks form a cycle: {' -> '.join(cycle)}"))
    for section, uses in _SECTION_USERS.items():
        users = [t for t, spec in tasks.items() if uses(spec)]
        if users and body.get(section) is None:
            problems.append((("tasks", users[0]), f"task(s) {one_of(users)} need a `{section}` section in this DAG; it is missing"))
    schedule, runs = body.get("schedule"), body.get("max_active_runs", 1)
    if schedule in ONE_RUN_AT_A_TIME and isinstance(runs, int) and runs > 1:
        problems.append((("max_active_runs",), f"schedule {schedule} allows one active run at a time; expected 1, found {runs}"))
    return problems


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in task -> upstream edges, as a list of task ids (first task repeated at the end), or None.

    Iterative: a chain of thousands of tasks must not exhaust Python's recursion limit.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        path: list[str] = [root]
        iters = [iter(graph.get(root, ()))]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                return list(reversed(cycle))
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(graph.get(nxt, ())))
    return None
