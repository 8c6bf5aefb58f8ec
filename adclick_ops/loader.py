"""What `dags/adclick_dags.py` runs at every parse: validate `pipelines/`, then render with dag-factory.

A broken pipeline file must not take the others down, and must not vanish silently either (which is
what dag-factory's own folder scan does). So every file is validated first; the valid ones are
rendered from their validated configuration by dag-factory's DagBuilder, and each broken one is
reported to the DagBag that is parsing us as an import error of that file, with the validation
message.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from adclick_ops.config import ConfigError, load_catalog
from adclick_ops.factory import dag_configs

# dag-factory reads this at import time; off unless the operator turned it on explicitly.
os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")


def _parsing_dagbag() -> Any | None:
    """The DagBag whose file import is running this code, if any.

    A DAG file can only report one import error, for itself, by raising - which would also drop
    every valid DAG of the file. Recording the error under the pipeline file's own name keeps the
    other DAGs and shows the error where the user has to look.
    """
    # Airflow 3.3 moved DagBag to airflow.dag_processing.dagbag (airflow.models.dagbag keeps DBDagBag).
    dagbag_module = sys.modules.get("airflow.dag_processing.dagbag")
    dagbag_class = getattr(dagbag_module, "DagBag", None)
    if dagbag_class is None:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, dagbag_class):
            return candidate
        frame = frame.f_back
    return None


def _dag_being_run() -> str | None:
    """The DAG id when a task process parses this file (Airflow's parsing context), else None.

    Only a task process sets a task id too; `airflow dags test` sets the DAG id alone and needs
    every DAG (its TriggerDagRunOperator looks the monitor DAG up).
    """
    try:
        from airflow.sdk import get_parsing_context
    except ImportError:
        return None
    context = get_parsing_context()
    return context.dag_id if context.task_id else None


def _error_key(dagbag: Any, pipeline_file: str) -> str:
    path = os.path.abspath(pipeline_file)
    base = getattr(dagbag, "bundle_path", None)
    return os.path.relpath(path, base) if base else path


def _dag_builder() -> Any:
    """dag-factory's DagBuilder class.

    dag-factory 1.1 supports Airflow 2 and 3 alike, so importing it also reaches for Airflow 2's
    operator paths (airflow.operators.python, airflow.sensors.python). Airflow 3 warns about each
    one, and the DAG processor would print those warnings into the log of every parse of our DAG
    file. They concern dag-factory's imports, not the pipelines, so they are silenced here, and
    only those.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"dagfactory(\.|$)")
        # The standard provider's sensors.python (which dag-factory imports) still imports
        # airflow.utils.operator_helpers.determine_kwargs, deprecated in Airflow 3.3.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"airflow\.providers\.standard\.sensors\.python$")
        from dagfactory.dagbuilder import DagBuilder
    return DagBuilder


def _build(globals_dict: dict[str, Any], catalog: Any, configs: dict[str, dict[str, Any]]) -> None:
    """dag-factory's DagBuilder on each validated config, with the pipeline file's own text as the DAG's docs.

    `load_yaml_dags(config_dict=...)` would do the same after dumping every config back to YAML for
    those docs with pure-Python PyYAML: about half of dag-factory's time per DAG.
    """
    DagBuilder = _dag_builder()
    sources = {dag_id: f.document.text for f in catalog.files for dag_id in f.dags}
    for dag_id, config in configs.items():
        built = DagBuilder(dag_name=dag_id, dag_config={**config, "task_groups": {}}, default_config={}, yml_dag=sources.get(dag_id, "")).build()
        globals_dict[built["dag_id"]] = built["dag"]


def render(globals_dict: dict[str, Any], pipelines: str | os.PathLike[str] | None = None) -> list[str]:
    """Render every valid DAG of the pipelines folder into `globals_dict`; returns their ids."""
    catalog = load_catalog(pipelines)
    configs = dag_configs(catalog)
    wanted = _dag_being_run()
    if wanted in configs:  # a task process needs its own DAG only
        configs = {wanted: configs[wanted]}
    if configs:
        _build(globals_dict, catalog, configs)
    if catalog.errors:
        dagbag = _parsing_dagbag()
        if dagbag is None:
            catalog.raise_for_errors()
        for path, error in catalog.errors.items():
            dagbag.import_errors[_error_key(dagbag, path)] = f"{type(error).__name__}: invalid pipeline file\n{error}"
    return list(configs)


__all__ = ["ConfigError", "render"]
