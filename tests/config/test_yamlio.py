"""adclick_ops.config.yamlio: safe YAML that remembers each value's line and reads values as YAML 1.2 does."""

from __future__ import annotations

import math

import pytest

from adclick_ops.config.yamlio import MAX_DEPTH, MAX_FILE_BYTES, YamlReadError, declared_ids, parse_yaml, read_12, read_yaml


def test_values_keep_the_line_they_were_written_on():
    doc = parse_yaml("Lab:\n  schedule: null\n  tags:\n    - a\n    - b\n", "p.yaml")
    assert doc.data == {"Lab": {"schedule": None, "tags": ["a", "b"]}}
    assert doc.line_of(("Lab", "tags", 1)) == 5
    assert doc.line_of(("Lab", "schedule")) == 2
    # a pydantic location deeper than the file goes: the deepest prefix that has a line
    assert doc.line_of(("Lab", "tags", 1, "function-after[x]")) == 5
    assert doc.line_of(("Other",)) == 1


@pytest.mark.parametrize(
    "text,value",
    [
        ("1", 1),
        ("0x1f", 31),
        ("0o17", 15),
        ("1e3", 1000.0),
        ("-.inf", -math.inf),
        ("~", None),
        ("", None),
        ("TRUE", True),
        ("no", "no"),
        ("1_000", "1_000"),
        ("9" * 5000, "9" * 5000),
    ],
)
def test_plain_scalars_as_yaml_1_2_reads_them(text, value):
    assert read_12(text) == value
    assert type(read_12(text)) is type(value)


def test_what_yaml_1_1_reads_otherwise_is_kept_as_text_with_a_problem_on_its_line():
    doc = parse_yaml("a:\n  enabled: yes\n  mode: 012\n", "p.yaml")
    assert doc.data == {"a": {"enabled": "yes", "mode": "012"}}
    assert [loc for loc, _ in doc.problems] == [("a", "enabled"), ("a", "mode")]
    assert "'yes' is true in YAML 1.1 but text in YAML 1.2" in doc.problems[0][1]
    assert "quote it if it is text" in doc.problems[1][1]


def test_a_duplicate_key_is_a_problem_naming_the_first_line():
    assert parse_yaml("a: 1\na: 2\n").problems == [(("a",), "duplicate key 'a' (first at line 1); the second is ignored")]


@pytest.mark.parametrize(
    "text,message,line",
    [
        ("# only a comment\n", "file is empty; expected a mapping of DAG ids to DAG settings", None),
        ("- a\n", "found a list at the top level; expected a mapping of DAG ids to DAG settings", 1),
        ("just text\n", "found a single value ('just text') at the top level", 1),
        ("{}\n", "found an empty mapping ({}); expected a mapping of DAG ids to DAG settings", 1),
        ("a: &x 1\nb: *x\n", "invalid YAML: anchors and aliases (*name) are not supported in pipeline files", 2),
        (
            "a: !!python/object:os.system x\n",
            "the tag 'tag:yaml.org,2002:python/object:os.system' is not allowed; pipeline files hold plain values only",
            1,
        ),
        ("a:\n  b: c: d\n", "invalid YAML: mapping values are not allowed in this context", 2),
        ("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n", f"invalid YAML: nesting deeper than {MAX_DEPTH} levels", 1),
    ],
)
def test_what_is_not_a_mapping_of_plain_values_is_refused_with_its_line(text, message, line):
    with pytest.raises(YamlReadError) as raised:
        parse_yaml(text, "p.yaml")
    assert message in raised.value.message
    assert raised.value.line == line
    assert str(raised.value).startswith(f"p.yaml:{line}: " if line else "p.yaml: ")


def test_a_file_too_large_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(YamlReadError, match=f"pipeline files are limited to {MAX_FILE_BYTES}"):
        read_yaml(path)


def test_bytes_that_are_not_utf8_name_their_line_and_offset_and_keep_the_text(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"Lab:\n  description: caf\xe9\n")
    with pytest.raises(YamlReadError) as raised:
        read_yaml(path)
    assert raised.value.message == "not valid UTF-8 (byte 0xe9 at offset 23)"
    assert raised.value.line == 2
    assert raised.value.text.startswith("Lab:")  # so the DAG ids it declares can still be recovered


def test_a_folder_or_a_missing_file(tmp_path):
    with pytest.raises(YamlReadError, match="a folder, not a pipeline file"):
        read_yaml(tmp_path)
    with pytest.raises(YamlReadError, match="file not found"):
        read_yaml(tmp_path / "none.yaml")


def test_the_dag_ids_of_a_file_that_does_not_parse_are_read_line_by_line():
    text = 'Lab:\n  tasks: [\n"Quoted": 1\n  nested: 2\nnot an id: 3\n'
    assert declared_ids(text) == ["Lab", "Quoted"]
