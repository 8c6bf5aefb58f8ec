"""Which registry belongs to which DAG: read from the pipeline files, so commands and the monitor need only a DAG id."""

from __future__ import annotations

import os

from adclick_ops.registry.registry import Registry, RegistryError


def registries(pipelines: str | os.PathLike[str] | None = None) -> dict[str, Registry]:
    """The registry of every DAG that trains a model, by DAG id."""
    from adclick_ops.config import load_catalog
    from adclick_ops.factory import training_jobs

    return {dag_id: Registry.for_job(job) for dag_id, job in training_jobs(load_catalog(pipelines)).items()}


def registry_for(dag_id: str | None, pipelines: str | os.PathLike[str] | None = None) -> Registry:
    """The registry of `dag_id`; with None, of the only training DAG there is."""
    found = registries(pipelines)
    if dag_id is None:
        if len(found) != 1:
            raise RegistryError(f"name the DAG with --dag; the training DAGs are: {', '.join(sorted(found)) or 'none'}")
        dag_id = next(iter(found))
    if dag_id not in found:
        raise RegistryError(
            f"DAG {dag_id!r} does not train a model in the pipeline files; the training DAGs are: {', '.join(sorted(found)) or 'none'}"
        )
    return found[dag_id]
