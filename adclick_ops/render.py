"""What `dags/adclick_dags.py` runs at every parse: validate `pipelines/`, build the DAGs with dag-factory.

`factory` turns validated settings into dag-factory's dictionaries; this module hands them to
dag-factory's DagBuilder and puts the DAGs into the DAG file's globals. A broken pipeline file
must not take the others down, nor vanish silently (as with dag-factory's own folder scan): the
valid files are rendered, and each broken one is filed as an import error of its own
(`dagbag_errors`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from adclick_ops.config import ConfigError, load_catalog, pipelines_dir
from adclick_ops.dagbag_errors import file_import_errors
from adclick_ops.factory import dag_configs

# dag-factory reads this at import time; off unless the operator turned it on explicitly.
os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")


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
        built = DagBuilder(
            dag_name=dag_id, dag_config={**config, "task_groups": {}}, default_config={}, yml_dag=sources.get(dag_id, "")
        ).build()
        globals_dict[built["dag_id"]] = built["dag"]


def render(globals_dict: dict[str, Any], pipelines: str | os.PathLike[str] | None = None, *, dag_file: str | None = None) -> list[str]:
    """Render every valid DAG of the pipelines folder into `globals_dict`; returns their ids.

    The folder is `pipelines`, else $ADCLICK_OPS_PIPELINES, else the `pipelines/` beside the folder
    of `dag_file` (dags/../pipelines), so that a copied project renders its own files.
    """
    beside = Path(os.path.abspath(dag_file)).parent.parent / "pipelines" if dag_file else None
    catalog = load_catalog(pipelines_dir(pipelines, default=beside))
    configs = dag_configs(catalog)
    wanted = _dag_being_run()
    if wanted in configs:  # a task process needs its own DAG only
        configs = {wanted: configs[wanted]}
    if configs:
        _build(globals_dict, catalog, configs)
    file_import_errors(catalog.errors)
    return list(configs)


__all__ = ["ConfigError", "render"]
