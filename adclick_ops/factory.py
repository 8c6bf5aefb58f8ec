"""Validated pipeline settings -> the dictionaries dag-factory renders into DAGs.

This is where the knobs of a DAG reach its tasks: each task callable gets its validated section
(`TrainingJob`, `Monitor`) as JSON in `op_kwargs` and rebuilds the model from it; the e-mail and
trigger operators get theirs as arguments. Relative paths are made absolute against the project
root here, once.

Airflow renders the templated fields of each operator (op_kwargs, conf, subject, to, ...) with
Jinja. Pipeline text reaches them only through `config.templating`: as a literal, or as a template
whose only expressions are the allowed placeholders.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

from adclick_ops.config import Catalog, project_root
from adclick_ops.config.locations import parse_location
from adclick_ops.config.models import (
    EMAIL_OPERATOR,
    MONITOR_CALLABLES,
    PYTHON_OPERATOR,
    REPORT_EMAIL_OPERATOR,
    TRAINING_CALLABLES,
    TRIGGER_OPERATOR,
    Dag,
    DefaultArgs,
    Training,
    TrainingJob,
)
from adclick_ops.config.templating import as_template, literal, literal_tree

FAILURE_RECORDER = "adclick_ops.failures.FailureRecorder"
RECORDING_NOTIFIER = "adclick_ops.failures.RecordingFailureNotifier"


def _absolute(value: str, root: Path) -> str:
    where = parse_location(value)
    if not where.local or os.path.isabs(where.path):
        return str(where)
    return str(root / where.path)


def training_job(dag_id: str, dag: Dag, root: Path, pipeline_file: str | None = None) -> TrainingJob:
    """The DAG's `training` section as its tasks receive it; `pipeline_file` is the file that declares the DAG."""
    assert dag.training is not None
    settings = dag.training.model_dump()
    settings.update({key: _absolute(settings[key], root) for key in Training.PATH_FIELDS}, dag_id=dag_id, pipeline_file=pipeline_file)
    return TrainingJob.model_validate(settings)


def training_jobs(catalog: Catalog) -> dict[str, TrainingJob]:
    """The training section of every valid DAG that trains a model, as its tasks receive it, by DAG id."""
    root = project_root(catalog)
    return {
        dag_id: training_job(dag_id, dag, root, pipeline_file=str(Path(f.path).resolve()))
        for f in catalog.files
        for dag_id, dag in f.dags.items()
        if dag.training is not None
    }


_DURATIONS = {"retry_delay_sec": "retry_delay", "execution_timeout_secs": "execution_timeout"}


def _durations(args: dict[str, Any]) -> dict[str, Any]:
    """Seconds in the YAML -> the timedeltas Airflow's operators take (dag-factory passes keys as they are)."""
    return {_DURATIONS.get(k, k): dt.timedelta(seconds=v) if k in _DURATIONS else v for k, v in args.items()}


def _default_args(dag: Dag, shared: DefaultArgs) -> dict[str, Any]:
    merged = shared.model_dump(exclude_none=True)
    if dag.default_args is not None:
        merged.update(dag.default_args.model_dump(exclude_unset=True, exclude_none=True))
    merged = _durations(merged)
    start = dag.start_date
    if not isinstance(start, dt.datetime):
        start = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    merged["start_date"] = start
    return merged


def _task(task_id: str, dag_id: str, dag: Dag, root: Path, pipeline_file: str | None) -> dict[str, Any]:
    from adclick_ops import notify

    spec = dag.tasks[task_id]
    out: dict[str, Any] = {"operator": spec.operator}
    if spec.dependencies:
        out["dependencies"] = list(spec.dependencies)
    for key in ("trigger_rule", "retries", "retry_delay_sec", "execution_timeout_secs", "doc_md"):
        value = getattr(spec, key)
        if value is not None:
            out.update(_durations({key: value}))
    if spec.operator == PYTHON_OPERATOR:
        out["python_callable"] = spec.python_callable
        # op_kwargs is a templated field: every string in it is handed over as a literal
        if spec.python_callable in TRAINING_CALLABLES:
            out["op_kwargs"] = {"settings": literal_tree(training_job(dag_id, dag, root, pipeline_file).model_dump(mode="json"))}
        elif spec.python_callable in MONITOR_CALLABLES:
            assert dag.monitor is not None
            out["op_kwargs"] = {"settings": literal_tree(dag.monitor.model_dump(mode="json"))}
    elif spec.operator in (EMAIL_OPERATOR, REPORT_EMAIL_OPERATOR):
        assert dag.notify is not None
        out.update(notify.email_operator_args(dag.notify.email, with_text=spec.operator == REPORT_EMAIL_OPERATOR))
        # the report's bodies are rendered from its template files by ReportEmailOperator; the provider's
        # EmailOperator, named as it is, sends them (HTML only) through ReportEmailOperator(text_part=False)
        out["operator"] = REPORT_EMAIL_OPERATOR
    elif spec.operator == TRIGGER_OPERATOR:
        assert dag.trigger is not None
        out["trigger_dag_id"] = literal(dag.trigger.dag_id)
        out["conf"] = {key: as_template(value) for key, value in dag.trigger.conf.items()}
        out["wait_for_completion"] = False
    return out


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in `text`, so that nothing in it can close the block."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def doc_md(description: str | None, pipeline_text: str | None) -> str | None:
    """The DAG's docs in the Airflow UI: its description (Markdown), then the pipeline file as written.

    Airflow's UI renders doc_md as Markdown and drops raw HTML; a `<` of the description is written
    as `&lt;` all the same, so that HTML shows as the text it is whatever renders it. The file's
    text goes verbatim into a fenced yaml block (code: not interpreted). doc_md is no template field.
    """
    parts = []
    if description:
        parts.append(description.replace("<", "&lt;"))
    if pipeline_text is not None:
        fence = _fence(pipeline_text)
        parts.append(f"{fence}yaml\n{pipeline_text.rstrip(chr(10))}\n{fence}")
    # never ending with ".md": Airflow would read that as the name of a docs file
    return "\n\n".join(parts) if parts else None


def failure_callbacks(dag: Dag) -> dict[str, Any]:
    """Callbacks of every task of a training DAG: each failed try pushes its failure record (adclick_ops.failures);
    a failure also sends the e-mail when `notify.email.on_failure` asks for it, through the same callback, as
    dag-factory takes one callback per state: {"callback": <class with a notify method>, **its arguments}."""
    on_failure: dict[str, Any] = {"callback": FAILURE_RECORDER}
    if dag.notify is not None and dag.notify.email.on_failure:
        from adclick_ops import notify

        on_failure = {**notify.failure_callback_config(dag.notify.email), "callback": RECORDING_NOTIFIER}
    return {"on_failure_callback": on_failure, "on_retry_callback": {"callback": FAILURE_RECORDER}}


def dag_config(
    dag_id: str, dag: Dag, shared: DefaultArgs, root: Path, pipeline_file: str | None = None, pipeline_text: str | None = None
) -> dict[str, Any]:
    """The dag-factory configuration of one DAG, declared in `pipeline_file` whose text is `pipeline_text` (for the docs)."""
    cfg: dict[str, Any] = {
        "description": dag.description,
        "schedule": dag.schedule,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tags": list(dag.tags),
        "default_args": _default_args(dag, shared),
        "tasks": {task_id: _task(task_id, dag_id, dag, root, pipeline_file) for task_id in dag.tasks},
        "doc_md": doc_md(dag.description, pipeline_text),
    }
    if dag.is_paused_upon_creation is not None:
        cfg["is_paused_upon_creation"] = dag.is_paused_upon_creation
    if dag.training is not None:
        cfg["default_args"].update(failure_callbacks(dag))
    elif dag.notify is not None and dag.notify.email.on_failure:
        from adclick_ops import notify

        cfg["default_args"]["on_failure_callback"] = notify.failure_callback_config(dag.notify.email)
    return cfg


def dag_configs(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """dag-factory configurations of every valid DAG of the catalog, by DAG id."""
    root = project_root(catalog)
    return {
        dag_id: dag_config(dag_id, dag, catalog.defaults, root, pipeline_file=str(Path(f.path).resolve()), pipeline_text=f.document.text)
        for f in catalog.files
        for dag_id, dag in f.dags.items()
    }
