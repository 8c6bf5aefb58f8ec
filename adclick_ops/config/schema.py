"""The JSON Schemas of pipeline files and of defaults.yaml, generated from the models (`adclick-ops schema`)."""

from __future__ import annotations

from typing import Any

from adclick_ops.config.models import DAG_ID_PATTERN, Dag, Defaults

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def pipeline_schema() -> dict[str, Any]:
    """JSON Schema of a pipeline file: a mapping of DAG ids to `Dag`."""
    dag_schema = Dag.model_json_schema(ref_template="#/$defs/{model}")
    defs = dag_schema.pop("$defs", {})
    defs["Dag"] = dag_schema
    return {
        "$schema": DRAFT,
        "title": "adclick-ops pipeline file",
        "description": "A mapping of DAG ids to DAG settings, rendered into Airflow DAGs by dag-factory.",
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": DAG_ID_PATTERN},
        "additionalProperties": {"$ref": "#/$defs/Dag"},
        "$defs": defs,
    }


def defaults_schema() -> dict[str, Any]:
    schema = Defaults.model_json_schema(ref_template="#/$defs/{model}")
    schema["$schema"] = DRAFT
    return schema
