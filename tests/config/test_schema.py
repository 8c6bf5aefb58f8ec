"""adclick_ops.config.schema: the JSON Schemas of pipeline files and of defaults.yaml, generated from the models."""

from __future__ import annotations

import json

from adclick_ops.cli import main
from adclick_ops.config.schema import pipeline_schema

from tests.support import PROJECT


def test_shipped_files_point_editors_at_the_schema():
    for path in (PROJECT / "pipelines").glob("*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=../schema/"), path
        assert (path.parent / first.split("=", 1)[1]).resolve().exists()


def test_committed_schema_is_up_to_date(capsys):
    assert main(["schema", "--check"]) == 0, capsys.readouterr().err


def test_schema_describes_the_format():
    schema = pipeline_schema()
    dag = schema["$defs"]["Dag"]
    assert dag["additionalProperties"] is False
    assert "tasks" in dag["required"]
    split = schema["$defs"]["Split"]["properties"]["test_size"]
    assert split["exclusiveMinimum"] == 0 and split["exclusiveMaximum"] == 1


def test_schema_command_writes_json(tmp_path, capsys):
    assert main(["schema", "--output", str(tmp_path)]) == 0
    schema = json.loads((tmp_path / "pipeline.schema.json").read_text())
    assert schema["additionalProperties"] == {"$ref": "#/$defs/Dag"}


def test_the_schema_states_the_rules_editors_can_check():
    from adclick_ops.config import models

    schema = pipeline_schema()
    defs = schema["$defs"]
    task = defs["Task"]["properties"]
    assert task["operator"]["enum"] == list(models.OPERATORS)
    assert set(models.CALLABLES) <= set(task["python_callable"]["enum"])
    assert set(models.TRIGGER_RULES) <= set(task["trigger_rule"]["enum"])
    assert task["dependencies"]["uniqueItems"] is True
    tasks = defs["Dag"]["properties"]["tasks"]
    assert list(tasks["patternProperties"]) == [models.TASK_ID_PATTERN] and tasks["additionalProperties"] is False
    email = defs["EmailNotification"]["properties"]
    assert {k: email["to"]["items"][k] for k in models.EMAIL_SCHEMA} == models.EMAIL_SCHEMA and email["to"]["uniqueItems"] is True
    assert schema["propertyNames"]["not"]["enum"] == list(models.RESERVED_DAG_IDS)
    assert defs["Training"]["properties"]["features"]["uniqueItems"] is True
    assert defs["Dag"]["properties"]["tags"]["items"]["maxLength"] == models.TAG_MAX_LEN
    assert any("then" in rule and rule["then"].get("required") == ["trigger"] for rule in defs["Dag"]["allOf"])


def test_the_shipped_files_are_valid_under_the_generated_schemas():
    """Read as editors read them (YAML 1.2: a date is text)."""
    import jsonschema

    from adclick_ops.config.schema import defaults_schema
    from adclick_ops.config.yamlio import read_yaml

    for path in sorted((PROJECT / "pipelines").glob("*.yaml")):
        schema = defaults_schema() if path.name == "defaults.yaml" else pipeline_schema()
        jsonschema.Draft202012Validator(schema).validate(read_yaml(path).data)


def test_the_schema_refuses_what_validate_refuses_for_an_editor():
    import jsonschema

    validator = jsonschema.Draft202012Validator(pipeline_schema())
    assert not list(
        validator.iter_errors({"Lab": {"tasks": {"t": {"operator": "airflow.providers.standard.operators.empty.EmptyOperator"}}}})
    )
    errors = {
        "unknown DAG field": {
            "Lab": {"tasks": {"t": {"operator": "airflow.providers.standard.operators.empty.EmptyOperator"}}, "shedule": None}
        },
        "operator outside the allow-list": {"Lab": {"tasks": {"t": {"operator": "airflow.operators.bash.BashOperator"}}}},
        "reserved DAG id": {"default": {"tasks": {"t": {"operator": "airflow.providers.standard.operators.empty.EmptyOperator"}}}},
        "template syntax in a description": {
            "Lab": {
                "description": "{{ conn.x.password }}",
                "tasks": {"t": {"operator": "airflow.providers.standard.operators.empty.EmptyOperator"}},
            }
        },
        "no DAG": {},
    }
    for what, document in errors.items():
        assert list(validator.iter_errors(document)), what


def test_schema_check_names_the_files_out_of_date(tmp_path, capsys):
    assert main(["schema", "--output", str(tmp_path)]) == 0
    assert main(["schema", "--check", "--output", str(tmp_path)]) == 0
    (tmp_path / "defaults.schema.json").write_text("{}\n")
    capsys.readouterr()
    assert main(["schema", "--check", "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "out of date: " in err and "defaults.schema.json" in err and "pipeline.schema.json" not in err
