"""Which registry belongs to which DAG: read from the pipeline files, so commands and the monitor need only a DAG id."""

from __future__ import annotations

import os
from typing import Any

from adclick_ops.registry.registry import Registry, RegistryError


def training_settings_by_dag(
    pipelines: str | os.PathLike[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The training settings (absolute paths) of every valid DAG that trains a model."""
    from adclick_ops.config import load_catalog
    from adclick_ops.factory import project_root, training_settings

    catalog = load_catalog(pipelines)
    root = project_root(catalog)
    return {
        dag_id: training_settings(dag_id, dag, root)
        for dag_id, dag in catalog.dags.items()
        if dag.training is not None
    }


def registry_for(
    dag_id: str | None, pipelines: str | os.PathLike[str] | None = None
) -> Registry:
    """The registry of `dag_id`; with None, of the only training DAG there is."""
    found = training_settings_by_dag(pipelines)
    if dag_id is None:
        if len(found) != 1:
            raise RegistryError(
                f"name the DAG with --dag; the training DAGs are: {', '.join(sorted(found)) or 'none'}"
            )
        dag_id = next(iter(found))
    if dag_id not in found:
        raise RegistryError(
            f"DAG {dag_id!r} does not train a model in the pipeline files; the training DAGs are: {', '.join(sorted(found)) or 'none'}"
        )
    return Registry.for_settings(found[dag_id])
