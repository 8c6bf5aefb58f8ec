"""What `dags/adclick_dags.py` runs at every parse: validate `pipelines/`, build the DAGs with dag-factory.

`factory` turns validated settings into dag-factory's dictionaries; this module hands them to
dag-factory's DagBuilder and puts the DAGs into the DAG file's globals. A broken pipeline file
must not take the others down, nor vanish silently (as with dag-factory's own folder scan): the
valid files are rendered, each DAG on its own, and each broken file (or DAG that Airflow refuses)
is filed as an import error of its pipeline file (`dagbag_errors`). A broken file that validated
before goes on from its last valid version meanwhile (`lastgood`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adclick_ops import lastgood
from adclick_ops.config import ConfigError, Issue, load_catalog, pipeline_paths, pipelines_dir, project_root
from adclick_ops.config.vocabulary import LAST_GOOD_DOCS_OPENING, LAST_GOOD_TAG
from adclick_ops.dagbag_errors import file_import_errors
from adclick_ops.factory import _fence, dag_config

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


def _autoregistered() -> set[Any]:
    """The DAGs that Airflow's DAG context collected while they were built (the DagBag reads them too)."""
    try:
        from airflow.sdk.definitions._internal.contextmanager import DagContext
    except ImportError:  # pragma: no cover - Airflow moved it
        return set()
    return DagContext.autoregistered_dags


def _check_as_airflow_does(dag: Any) -> None:
    """What the DagBag does to each DAG after importing the DAG file (Airflow 3.3's DagBag.process_file and
    bag_dag): a DAG that fails here would otherwise be filed under the DAG file, taking every DAG down."""
    dag.validate()
    dag.check_cycle()


def _build_one(DagBuilder: Any, dag_id: str, config: dict[str, Any]) -> Any:
    registered = _autoregistered()
    before = set(registered)
    try:
        dag = DagBuilder(dag_name=dag_id, dag_config={**config, "task_groups": {}}, default_config={}, yml_dag=None).build()["dag"]
        _check_as_airflow_does(dag)
    except BaseException:
        # a half-built DAG must not reach the DagBag through the DAG context either
        registered.difference_update(set(registered) - before)
        raise
    return dag


def _build(
    globals_dict: dict[str, Any],
    catalog: Any,
    files: list[Any],
    wanted: str | None,
    decorate: Callable[[Any, dict[str, Any]], None] | None = None,
) -> tuple[list[str], dict[str, ConfigError]]:
    """dag-factory's DagBuilder on each validated DAG of `files` on its own, with its description and the pipeline
    file's text as the DAG's docs (factory.doc_md, in place of dag-factory's own dump of the file); `decorate(file,
    config)` edits a DAG's configuration before it is built.

    Any error while one DAG is configured, built or checked becomes an error of its pipeline file;
    the other DAGs still load. `load_yaml_dags(config_dict=...)` would build them all at once, after
    dumping every config back to YAML for those docs with pure-Python PyYAML: about half of
    dag-factory's time per DAG.
    """
    root = project_root(catalog)
    built: list[str] = []
    errors: dict[str, list[Issue]] = {}
    todo = [(f, dag_id, dag) for f in files for dag_id, dag in f.dags.items() if wanted is None or dag_id == wanted]
    if not todo:
        return built, {}
    DagBuilder = _dag_builder()
    for f, dag_id, dag in todo:
        try:
            config = dag_config(dag_id, dag, catalog.defaults, root, pipeline_text=f.document.text)
            if decorate is not None:
                decorate(f, config)
            globals_dict[dag_id] = _build_one(DagBuilder, dag_id, config)
        except Exception as exc:
            cause = " ".join(f"{type(exc).__name__}: {exc}".split())
            message = f"Airflow refused this DAG: {cause[:500]}; please report it, `adclick-ops validate` should have caught it"
            errors.setdefault(f.path, []).append(Issue(f.path, f.document.line_of((dag_id,)), dag_id, message))
            continue
        built.append(dag_id)
    return built, {path: ConfigError(issues) for path, issues in errors.items()}


def _last_good_docs(kept: lastgood.Kept) -> str:
    """What the docs of a DAG rendered from its file's last valid version open with: what runs, and why."""
    errors = "\n".join(str(i) for i in kept.errors.issues[:5])
    if len(kept.errors.issues) > 5:
        errors += f"\n... and {len(kept.errors.issues) - 5} more"
    fence = _fence(errors)
    path = kept.file.path.replace("<", "&lt;").replace("`", "'")
    return (
        f"{LAST_GOOD_DOCS_OPENING}{path}** ({kept.snapshot.describe()}). The file as it is now does not "
        f"validate; Airflow shows its errors as the import error of {path}. Fix the file and this DAG follows it again. "
        f"The first errors:\n\n{fence}text\n{errors}\n{fence}"
    )


def _keep(decision: lastgood.Decision) -> Callable[[Any, dict[str, Any]], None]:
    by_path = {k.file.path: k for k in decision.kept}

    def decorate(f: Any, config: dict[str, Any]) -> None:
        kept = by_path[f.path]
        config["tags"] = [*config["tags"], LAST_GOOD_TAG]
        config["doc_md"] = _last_good_docs(kept) + ("\n\n" + config["doc_md"] if config.get("doc_md") else "")

    return decorate


def _merge(*groups: dict[str, ConfigError]) -> dict[str, ConfigError]:
    merged: dict[str, list[Issue]] = {}
    for group in groups:
        for path, error in group.items():
            merged.setdefault(path, []).extend(error.issues)
    return {path: ConfigError(issues) for path, issues in merged.items()}


def render(globals_dict: dict[str, Any], pipelines: str | os.PathLike[str] | None = None, *, dag_file: str | None = None) -> list[str]:
    """Render every valid DAG of the pipelines folder into `globals_dict`; returns their ids.

    The folder is `pipelines`, else $ADCLICK_OPS_PIPELINES, else the `pipelines/` beside the folder
    of `dag_file` (dags/../pipelines), so that a copied project renders its own files.

    A file that does not validate any more goes on from its last valid version (`lastgood`), tagged
    `last-good`, while its errors are filed as its import error; a file that validates, and whose
    DAGs Airflow accepts, becomes the last valid version. A task process (which builds its own DAG
    only) reads the snapshots and never writes them.
    """
    beside = Path(os.path.abspath(dag_file)).parent.parent / "pipelines" if dag_file else None
    folder = pipelines_dir(pipelines, default=beside)
    catalog = load_catalog(folder)
    snapshots = lastgood.snapshot_folder(folder)
    decision = lastgood.keep_last_good(catalog, snapshots)
    kept_files = [k.file for k in decision.kept]
    wanted = _dag_being_run()
    if wanted not in catalog.dags and not any(wanted in f.dags for f in kept_files):  # a task process needs its own DAG only
        wanted = None
    built, errors = _build(globals_dict, catalog, catalog.files, wanted)
    kept_built, kept_errors = _build(globals_dict, catalog, kept_files, wanted, _keep(decision))
    if wanted is None:
        for f in catalog.files:
            if f.path not in errors:
                lastgood.record(snapshots, Path(f.path).name, f.document.text, folder)
        if folder.is_dir():
            lastgood.prune(snapshots, {p.name for p in pipeline_paths(folder)})
    file_import_errors(_merge(catalog.errors, errors, kept_errors), notes=decision.notes)
    return built + kept_built


__all__ = ["ConfigError", "render"]
