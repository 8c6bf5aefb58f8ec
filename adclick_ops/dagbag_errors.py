"""Filing each broken pipeline file as an import error of its own in the DagBag that parses the DAG file.

A DAG file can report one import error, for itself, by raising, which would also drop every valid
DAG of the file. Airflow has no API to do better, so the parsing DagBag is found on the call stack:
that leans on Airflow's internals, and is done only on the Airflow versions the tests run it on.
Elsewhere every error is raised against the DAG file, with a line that says why.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from adclick_ops.config import ConfigError
from adclick_ops.config.vocabulary import INVALID_FILE_HEADLINE

TESTED_AIRFLOW = ("3.3",)
# Where each tested Airflow defines DagBag (3.3 moved it; the old path is a deprecated shim).
DAGBAG_MODULES = ("airflow.dag_processing.dagbag", "airflow.models.dagbag")


class UnfiledPipelineErrors(ConfigError):
    """Pipeline errors that could not be filed per file, raised against the DAG file instead."""

    def __init__(self, issues: list[Any], reason: str):
        super().__init__(issues)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason}\n{super().__str__()}"


def airflow_version() -> str:
    return str(getattr(sys.modules.get("airflow"), "__version__", ""))


def is_tested(version: str) -> bool:
    return any(version == v or version.startswith(v + ".") for v in TESTED_AIRFLOW)


def _dagbag_classes() -> tuple[type, ...]:
    # vars(), not getattr: the deprecated module's __getattr__ would warn at every parse
    found = (vars(sys.modules[name]).get("DagBag") for name in DAGBAG_MODULES if name in sys.modules)
    return tuple(cls for cls in found if isinstance(cls, type))


def parsing_dagbag() -> Any | None:
    """The DagBag whose file import is running this code, if any."""
    classes = _dagbag_classes()
    if not classes:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, classes):
            return candidate
        frame = frame.f_back
    return None


def _error_key(dagbag: Any, pipeline_file: str) -> str:
    path = os.path.abspath(pipeline_file)
    base = getattr(dagbag, "bundle_path", None)
    return os.path.relpath(path, base) if base else path


def file_import_errors(errors: dict[str, ConfigError], notes: dict[str, str] | None = None) -> None:
    """Record each pipeline file's errors under that file's name, followed by its note (what runs instead, see
    `lastgood`); raise them all when that cannot be done."""
    if not errors:
        return
    issues = [issue for error in errors.values() for issue in error.issues]
    version = airflow_version()
    if version and not is_tested(version):
        raise UnfiledPipelineErrors(
            issues,
            f"invalid pipeline files, reported against the DAG file: per-file import errors are filed on Airflow "
            f"{', '.join(TESTED_AIRFLOW)} only, and this is Airflow {version}",
        )
    dagbag = parsing_dagbag()
    if dagbag is None:  # not parsed by a DagBag: a plain import, `adclick-ops graph`
        raise ConfigError(issues)
    for path, error in errors.items():
        note = (notes or {}).get(path)
        dagbag.import_errors[_error_key(dagbag, path)] = f"{INVALID_FILE_HEADLINE}\n{error}" + (f"\n{note}" if note else "")
