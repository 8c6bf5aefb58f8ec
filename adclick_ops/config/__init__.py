"""The pipeline files as validated settings: the one place that turns YAML into checked models.

`errors` says what is wrong and where, `catalog` reads a folder, `models` describes the format,
`vocabulary` holds the names everything else shares. The names below are imported on first use,
so that `vocabulary` alone (the monitor, the REST client) does not load pydantic and YAML.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DEFAULTS_NAMES": "catalog",
    "Catalog": "catalog",
    "PipelineFile": "catalog",
    "load_catalog": "catalog",
    "load_pipeline_file": "catalog",
    "pipeline_paths": "catalog",
    "pipelines_dir": "catalog",
    "project_root": "catalog",
    "shown_path": "catalog",
    "ConfigError": "errors",
    "Issue": "errors",
}
__all__ = [
    "DEFAULTS_NAMES",
    "Catalog",
    "ConfigError",
    "Issue",
    "PipelineFile",
    "load_catalog",
    "load_pipeline_file",
    "pipeline_paths",
    "pipelines_dir",
    "project_root",
    "shown_path",
]

if TYPE_CHECKING:
    from adclick_ops.config.catalog import (
        DEFAULTS_NAMES,
        Catalog,
        PipelineFile,
        load_catalog,
        load_pipeline_file,
        pipeline_paths,
        pipelines_dir,
        project_root,
        shown_path,
    )
    from adclick_ops.config.errors import ConfigError, Issue


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
