"""What `dags/adclick_dags.py` runs at every parse: validate `pipelines/`, then render with dag-factory.

A broken pipeline file must not take the others down, and must not vanish silently either (which is
what dag-factory's own folder scan does). So every file is validated first; the valid ones are
rendered from `config_dict`, and each broken one is reported to the DagBag that is parsing us as an
import error of that file, with the validation message.
"""

from __future__ import annotations

import os
import sys
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
    dagbag_module = sys.modules.get("airflow.models.dagbag")
    if dagbag_module is None:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, dagbag_module.DagBag):
            return candidate
        frame = frame.f_back
    return None


def _error_key(dagbag: Any, pipeline_file: str) -> str:
    path = os.path.abspath(pipeline_file)
    base = getattr(dagbag, "bundle_path", None)
    return os.path.relpath(path, base) if base else path


def render(globals_dict: dict[str, Any], pipelines: str | os.PathLike[str] | None = None) -> list[str]:
    """Render every valid DAG of the pipelines folder into `globals_dict`; returns their ids."""
    catalog = load_catalog(pipelines)
    configs = dag_configs(catalog)
    if configs:
        from dagfactory import load_yaml_dags

        load_yaml_dags(globals_dict, config_dict=configs)
    if catalog.errors:
        dagbag = _parsing_dagbag()
        if dagbag is None:
            catalog.raise_for_errors()
        for path, error in catalog.errors.items():
            dagbag.import_errors[_error_key(dagbag, path)] = f"{type(error).__name__}: invalid pipeline file\n{error}"
    return list(configs)


__all__ = ["ConfigError", "render"]
