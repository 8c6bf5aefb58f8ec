"""The JSON Schemas of pipeline files and of defaults.yaml, generated from the models (`adclick-ops schema`).

Field rules come from the models themselves; the rules across fields that JSON Schema can state
(a PythonOperator task names its callable, a task that needs a section finds it in its DAG, the
parameters each estimator takes, @continuous runs one at a time) are added here, from the same
constants, so that editors flag what `adclick-ops validate` refuses.
"""

from __future__ import annotations

from typing import Any

from adclick_ops.config.models import (
    DAG_ID_PATTERN,
    EMAIL_OPERATOR,
    MONITOR_CALLABLES,
    PYTHON_OPERATOR,
    REPORT_EMAIL_OPERATOR,
    RESERVED_DAG_IDS,
    TRAINING_CALLABLES,
    TRIGGER_OPERATOR,
    Dag,
    Defaults,
)
from adclick_ops.config.schedules import ONE_RUN_AT_A_TIME
from adclick_ops.config.vocabulary import ESTIMATOR_PARAMS

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _some_task(condition: dict[str, Any]) -> dict[str, Any]:
    """A DAG with at least one task matching `condition`."""
    return {"properties": {"tasks": {"type": "object", "not": {"additionalProperties": {"not": condition}}}}, "required": ["tasks"]}


def _dag_rules() -> list[dict[str, Any]]:
    sections = {
        "training": {"properties": {"python_callable": {"enum": list(TRAINING_CALLABLES)}}, "required": ["python_callable"]},
        "monitor": {"properties": {"python_callable": {"enum": list(MONITOR_CALLABLES)}}, "required": ["python_callable"]},
        "notify": {"properties": {"operator": {"enum": [EMAIL_OPERATOR, REPORT_EMAIL_OPERATOR]}}, "required": ["operator"]},
        "trigger": {"properties": {"operator": {"const": TRIGGER_OPERATOR}}, "required": ["operator"]},
    }
    rules = [
        {"if": _some_task(cond), "then": {"required": [section], "properties": {section: {"not": {"type": "null"}}}}}
        for section, cond in sections.items()
    ]
    rules.append(
        {
            "if": {"properties": {"schedule": {"enum": list(ONE_RUN_AT_A_TIME)}}, "required": ["schedule"]},
            "then": {"properties": {"max_active_runs": {"maximum": 1}}},
        }
    )
    return rules


def _task_rules() -> list[dict[str, Any]]:
    return [
        {
            "if": {"properties": {"operator": {"const": PYTHON_OPERATOR}}, "required": ["operator"]},
            "then": {"required": ["python_callable"], "properties": {"python_callable": {"type": "string"}}},
            "else": {"properties": {"python_callable": {"type": "null"}}},
        }
    ]


def _estimator_rules() -> list[dict[str, Any]]:
    rules = []
    for name, params in ESTIMATOR_PARAMS.items():
        allowed = {"properties": {"params": {"propertyNames": {"enum": list(params)}}}}
        rules.append({"if": {"properties": {"name": {"const": name}}, "required": ["name"]}, "then": allowed})
    default = next(iter(ESTIMATOR_PARAMS))
    rules.append(
        {
            "if": {"not": {"required": ["name"]}},
            "then": {"properties": {"params": {"propertyNames": {"enum": list(ESTIMATOR_PARAMS[default])}}}},
        }
    )
    return rules


def _closed(node: Any) -> Any:
    """Mappings whose keys have a pattern (task ids, conf keys) admit no other key: pydantic leaves them open."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _closed(value)
    elif isinstance(node, list):
        for value in node:
            _closed(value)
    return node


def pipeline_schema() -> dict[str, Any]:
    """JSON Schema of a pipeline file: a mapping of DAG ids to `Dag`."""
    dag_schema = Dag.model_json_schema(ref_template="#/$defs/{model}")
    defs = dag_schema.pop("$defs", {})
    dag_schema["allOf"] = _dag_rules()
    defs["Dag"] = dag_schema
    defs["Task"]["allOf"] = _task_rules()
    defs["Estimator"]["allOf"] = _estimator_rules()
    return _closed(
        {
            "$schema": DRAFT,
            "title": "adclick-ops pipeline file",
            "description": "A mapping of DAG ids to DAG settings, rendered into Airflow DAGs by dag-factory.",
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": DAG_ID_PATTERN, "not": {"enum": list(RESERVED_DAG_IDS)}},
            "additionalProperties": {"$ref": "#/$defs/Dag"},
            "$defs": defs,
        }
    )


def defaults_schema() -> dict[str, Any]:
    schema = Defaults.model_json_schema(ref_template="#/$defs/{model}")
    schema["$schema"] = DRAFT
    return schema
