"""Validated pipeline settings -> the dictionaries dag-factory renders into DAGs.

This is where the knobs of a DAG reach its tasks: the step functions get their section as
`op_kwargs`, the e-mail and trigger operators get theirs as arguments. Relative paths are made
absolute against the project root here, once.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from adclick_ops.config import Catalog
from adclick_ops.config.models import (
    EMAIL_OPERATOR,
    REPORT_EMAIL_OPERATOR,
    MONITOR_CALLABLES,
    PYTHON_OPERATOR,
    TRAINING_CALLABLES,
    TRIGGER_OPERATOR,
    Dag,
    DefaultArgs,
)

PROJECT_ROOT_ENV = "ADCLICK_OPS_HOME"


def project_root(catalog: Catalog) -> Path:
    """Relative paths in pipeline files are relative to this: $ADCLICK_OPS_HOME, else pipelines/.."""
    env = os.environ.get(PROJECT_ROOT_ENV)
    return Path(env).resolve() if env else catalog.root.resolve().parent


def _absolute(value: str, root: Path) -> str:
    if "://" in value or os.path.isabs(value):
        return value
    return str(root / value)


def training_settings(dag_id: str, dag: Dag, root: Path) -> dict[str, Any]:
    assert dag.training is not None
    settings = dag.training.model_dump(mode="json")
    for key in ("dataset", "model_dir", "artifacts_root"):
        settings[key] = _absolute(settings[key], root)
    settings["dag_id"] = dag_id
    settings["promotion"] = dag.training.promotion_settings()
    return settings


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
        start = dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc)
    merged["start_date"] = start
    return merged


def _task(task_id: str, dag_id: str, dag: Dag, root: Path) -> dict[str, Any]:
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
        if spec.python_callable in TRAINING_CALLABLES:
            out["op_kwargs"] = {"settings": training_settings(dag_id, dag, root)}
        elif spec.python_callable in MONITOR_CALLABLES:
            assert dag.monitor is not None
            out["op_kwargs"] = {"settings": dag.monitor.model_dump(mode="json")}
    elif spec.operator in (EMAIL_OPERATOR, REPORT_EMAIL_OPERATOR):
        assert dag.notify is not None
        out.update(notify.email_operator_args(dag.notify.email, with_text=spec.operator == REPORT_EMAIL_OPERATOR))
    elif spec.operator == TRIGGER_OPERATOR:
        assert dag.trigger is not None
        out["trigger_dag_id"] = dag.trigger.dag_id
        out["conf"] = dict(dag.trigger.conf)
        out["wait_for_completion"] = False
    return out


def dag_config(dag_id: str, dag: Dag, shared: DefaultArgs, root: Path) -> dict[str, Any]:
    """The dag-factory configuration of one DAG."""
    cfg: dict[str, Any] = {
        "description": dag.description,
        "schedule": dag.schedule,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tags": list(dag.tags),
        "default_args": _default_args(dag, shared),
        "tasks": {task_id: _task(task_id, dag_id, dag, root) for task_id in dag.tasks},
    }
    if dag.is_paused_upon_creation is not None:
        cfg["is_paused_upon_creation"] = dag.is_paused_upon_creation
    if dag.notify is not None and dag.notify.email.on_failure:
        from adclick_ops import notify

        cfg["default_args"]["on_failure_callback"] = notify.failure_callback_config(dag.notify.email)
    return cfg


def dag_configs(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """dag-factory configurations of every valid DAG of the catalog, by DAG id."""
    root = project_root(catalog)
    configs = {dag_id: dag_config(dag_id, dag, catalog.defaults, root) for dag_id, dag in catalog.dags.items()}
    # The model card of each version keeps the text of the pipeline file that trained it.
    sources = {dag_id: str(Path(f.path).resolve()) for f in catalog.files for dag_id in f.dags}
    for dag_id, config in configs.items():
        for task in config["tasks"].values():
            settings = task.get("op_kwargs", {}).get("settings")
            if settings is not None and "model_dir" in settings:
                settings["pipeline_file"] = sources.get(dag_id)
    return configs
