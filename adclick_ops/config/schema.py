"""The JSON Schemas of pipeline files and of defaults.yaml, generated from the models (`adclick-ops schema`).

Field rules come from the models themselves; the rules across fields that JSON Schema can state
(a PythonOperator task names its callable, a task that needs a section finds it in its DAG, the
parameters each estimator takes and their values, @continuous runs one at a time) are added here,
from the same constants and tables, so that editors flag what `adclick-ops validate` refuses.
Estimator parameter values follow the table generated from scikit-learn (config/estimator_rules.py);
where JSON cannot tell 1 from 1.0 and the parameter gives them different meanings, the schema accepts
both and validate decides (elsewhere validate reads them as one number, as JSON does).

Numbers are judged as check-jsonschema loads YAML: .nan, .inf and -.inf are floats that JSON Schema's
number type accepts, so every number the models or the table want finite is bounded by the largest
finite float and excludes NaN with NOT_NAN (NaN is the one number that is neither above nor below 0:
every comparison with it is false, so it alone passes both exclusive bounds at 0).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from adclick_ops.config.estimator_rules import COMBINATIONS, INT_RANGE, Combination, describe_combination, param_rules
from adclick_ops.config.models import (
    DAG_ID_PATTERN,
    EMAIL_OPERATOR,
    FLOAT_MAX,
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
# Matches NaN and no other value: JSON Schema (and YAML's .nan, as check-jsonschema and editors load it) has no other way to say it.
NAN: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0}
NOT_NAN: dict[str, Any] = {"not": NAN}


def _refuse(node: dict[str, Any], schema: dict[str, Any]) -> None:
    """Add `{"not": schema}` to `node`, beside a `not` it may have."""
    if "not" in node:
        node.setdefault("allOf", []).append({"not": schema})
    else:
        node["not"] = schema


def _finite(node: Any) -> Any:
    """Every number of the models' schemas finite, as the models want it (allow_inf_nan=False): bounded by the largest
    float where a side has no bound, and not NaN."""
    if isinstance(node, dict):
        for value in node.values():
            _finite(value)
        if node.get("type") == "number":
            if "maximum" not in node and "exclusiveMaximum" not in node:
                node["maximum"] = FLOAT_MAX
            if "minimum" not in node and "exclusiveMinimum" not in node:
                node["minimum"] = -FLOAT_MAX
            _refuse(node, NAN)
    elif isinstance(node, list):
        for value in node:
            _finite(value)
    return node


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


_JSON_TYPES = {"int": "integer", "real": "number", "real_not_int": "number", "str": "string", "bool": "boolean"}
_BOUNDS = {"left": ("minimum", "exclusiveMinimum"), "right": ("maximum", "exclusiveMaximum")}


def _interval_schema(row: dict[str, Any]) -> dict[str, Any]:
    """One interval of the table: an integer within the machine's integers (INT_RANGE, as validate bounds them), or a
    number that is not NaN and is infinite only where the interval reaches infinity on a closed side."""
    out: dict[str, Any] = {"type": _JSON_TYPES[row["type"]]}
    integer = out["type"] == "integer"
    for side, (inclusive, exclusive) in _BOUNDS.items():
        sign = -1 if side == "left" else 1
        if row[side] is not None:
            out[inclusive if row["closed"] in (side, "both") else exclusive] = row[side]
        if integer:
            out.setdefault(inclusive, INT_RANGE[0] if side == "left" else INT_RANGE[1])
        elif row[side] is None and row["closed"] not in (side, "both"):
            out[inclusive] = sign * FLOAT_MAX
    if not integer:
        out["not"] = NAN
    return out


def _value_schema(row: dict[str, Any]) -> dict[str, Any] | None:
    """One constraint of the generated table as JSON Schema; None for what a file cannot write."""
    kind = row["kind"]
    if kind == "interval":
        return _interval_schema(row)
    if kind == "options":
        return {"enum": row["values"]}
    if kind == "instance" and row["type"] == "int":
        return {"type": "integer", "minimum": INT_RANGE[0], "maximum": INT_RANGE[1]}
    if kind == "instance" and row["type"] in _JSON_TYPES:
        return {"type": _JSON_TYPES[row["type"]]}
    return {"none": {"type": "null"}, "boolean": {"type": "boolean"}, "nan": NAN, "any": {}}.get(kind)


def _param_schema(rule: dict[str, Any]) -> dict[str, Any]:
    accepted = [s for s in map(_value_schema, rule["accepts"]) if s is not None]
    return {"anyOf": accepted} if accepted else {"not": {}}


def _condition(param: str, condition: tuple[Any, ...], default: Any) -> dict[str, Any] | None:
    """`param` meets `condition` (set so, or left out with a default that does); None when JSON cannot state it."""
    if condition[:1] == ("range",):
        when: dict[str, Any] = {"type": "number", "exclusiveMinimum": condition[1], "maximum": condition[2]}
        meets_default = isinstance(default, int | float) and condition[1] < default <= condition[2]
    else:
        # .inf is the one number above the largest float, -.inf the one below its opposite
        infinite = {
            math.inf: {"type": "number", "exclusiveMinimum": FLOAT_MAX},
            -math.inf: {"type": "number", "exclusiveMaximum": -FLOAT_MAX},
        }
        finite = [v for v in condition if not (isinstance(v, float) and v in infinite)]
        branches = ([{"enum": finite}] if finite else []) + [infinite[v] for v in condition if isinstance(v, float) and v in infinite]
        when = branches[0] if len(branches) == 1 else {"anyOf": branches}
        meets_default = default in condition
    present = {"properties": {param: when}, "required": [param]}
    return {"anyOf": [{"not": {"required": [param]}}, present]} if meets_default else present


def _combination_schema(combo: Combination, rules: dict[str, Any]) -> dict[str, Any] | None:
    conditions = [_condition(p, cond, rules[p]["default"]) for p, cond in combo.when.items()]
    if any(c is None for c in conditions):
        return None
    return {"not": {"allOf": conditions}, "description": f"refused together: {describe_combination(combo)}; expected {combo.expected}"}


def _params_schema(name: str) -> dict[str, Any]:
    rules = param_rules(name)
    combos = [_combination_schema(c, rules) for c in COMBINATIONS if c.estimator == name]
    out: dict[str, Any] = {
        "propertyNames": {"enum": list(ESTIMATOR_PARAMS[name])},
        "properties": {p: _param_schema(rules[p]) for p in ESTIMATOR_PARAMS[name]},
    }
    if any(combos):
        out["allOf"] = [c for c in combos if c]
    return out


def _estimator_rules() -> list[dict[str, Any]]:
    rules = [
        {"if": {"properties": {"name": {"const": name}}, "required": ["name"]}, "then": {"properties": {"params": _params_schema(name)}}}
        for name in ESTIMATOR_PARAMS
    ]
    default = next(iter(ESTIMATOR_PARAMS))
    rules.append({"if": {"not": {"required": ["name"]}}, "then": {"properties": {"params": _params_schema(default)}}})
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
    # the estimator's parameters: infinities and NaN as scikit-learn's rules say (_estimator_rules), not as the models do
    params = copy.deepcopy(dag_schema["$defs"]["Estimator"]["properties"]["params"])
    defs = _finite(dag_schema).pop("$defs", {})
    defs["Estimator"]["properties"]["params"] = params
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
    schema = _finite(Defaults.model_json_schema(ref_template="#/$defs/{model}"))
    schema["$schema"] = DRAFT
    return schema
