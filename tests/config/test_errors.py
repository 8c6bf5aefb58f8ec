"""adclick_ops.config.errors: issues that say where (file, line, field), what was found and what was expected."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adclick_ops.config.errors import ConfigError, Issue, describe, field_path, issues_from_validation, value_at
from adclick_ops.config.models import Dag
from adclick_ops.config.yamlio import parse_yaml


def issues_of(text: str) -> list[Issue]:
    doc = parse_yaml(text, "pipelines/x.yaml")
    dag_id, body = next(iter(doc.data.items()))
    with pytest.raises(ValidationError) as raised:
        Dag.model_validate(body)
    return issues_from_validation(doc, (dag_id,), raised.value, Dag)


def test_an_issue_reads_as_one_line_with_file_line_and_field():
    assert str(Issue("p.yaml", 3, "Lab.tags", "bad")) == "p.yaml:3: Lab.tags: bad"
    assert str(Issue("p.yaml", None, "", "not YAML")) == "p.yaml: not YAML"
    assert str(Issue("p.yaml", 1, "Lab\nx", "a\tb")) == "p.yaml:1: Lab\\nx: a\\tb"


def test_the_expected_part_of_a_message_is_kept_apart():
    assert Issue("p", 1, "f", "found 3; expected a list of text").expected == "a list of text"
    assert Issue("p", 1, "f", "bad", expected="one of: a, b").expected == "one of: a, b"
    assert Issue("p", 1, "f", "bad").expected is None


def test_a_config_error_says_every_issue_one_per_line():
    error = ConfigError([Issue("a.yaml", 1, "A", "x"), Issue("b.yaml", 2, "B", "y")], declared=["A"])
    assert str(error) == "a.yaml:1: A: x\nb.yaml:2: B: y"
    assert error.declared == ["A"]


def test_field_paths_and_values():
    assert field_path(("Lab", "tasks", "t1", "dependencies", 0)) == "Lab.tasks.t1.dependencies[0]"
    assert value_at({"a": [1, {"b": "x"}]}, ("a", 1, "b")) == "'x'"
    assert value_at({"a": [1]}, ("a", 5)) is None
    assert describe("x" * 200) == repr("x" * 200)[:77] + "..."


def test_an_unknown_field_lists_the_fields_of_its_own_model():
    issues = issues_of("Lab:\n  schedule: null\n  tasks: {}\n  shedule: daily\n")
    [issue] = [i for i in issues if i.field == "Lab.shedule"]
    assert (issue.line, issue.field, issue.found) == (4, "Lab.shedule", "'shedule'")
    assert issue.message.startswith("unknown field 'shedule'; expected one of: ")
    assert "schedule" in issue.expected and "tasks" in issue.expected


def test_a_wrong_value_names_what_was_found_and_what_pydantic_expected():
    issues = issues_of("Lab:\n  schedule: null\n  tasks: {}\n")
    [issue] = [i for i in issues if i.field == "Lab.tasks"]
    assert issue.line == 3
    assert issue.found == "{}"
    assert issue.message == "dictionary should have at least 1 item after validation, not 0; found {}"
    assert issue.expected == "have at least 1 item after validation, not 0"


def test_a_missing_field_is_described_by_its_own_description():
    issues = issues_of("Lab:\n  schedule: null\n")
    [issue] = [i for i in issues if i.field == "Lab.tasks"]
    assert issue.message.startswith("required field is missing")
    assert issue.found is None and issue.expected
    assert issue.line == 1  # where the DAG starts: the field has no line of its own
