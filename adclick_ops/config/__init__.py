"""The pipeline files as validated settings: the one place that turns YAML into checked models.

`errors` says what is wrong and where, `catalog` reads a folder, `models` describes the format,
`vocabulary` holds the names everything else shares.
"""

from adclick_ops.config.catalog import (
    Catalog,
    PipelineFile,
    load_catalog,
    load_pipeline_file,
    pipeline_paths,
    pipelines_dir,
    project_root,
)
from adclick_ops.config.errors import ConfigError, Issue

__all__ = [
    "Catalog",
    "ConfigError",
    "Issue",
    "PipelineFile",
    "load_catalog",
    "load_pipeline_file",
    "pipeline_paths",
    "pipelines_dir",
    "project_root",
]
