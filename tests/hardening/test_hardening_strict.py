"""Validate is at least as strict as the JSON Schema it ships, and reads values as editors do.

- Generated mutations of the shipped files (raw YAML tokens, wrong types, unknown keys, dropped
  keys, repeated items, template text, dates, ...) go through a real external validator,
  check-jsonschema, once over a folder; every file the schema refuses must be refused by
  validate too.
- YAML 1.1-only spellings (yes/off, 010, 1:30, 1_000, 0b1, 1e3, ...) in any field are refused with
  "quote it", never silently turned into another value; quoted, the same text is text.
- No coercion: a number where text is expected, text where a number or a boolean is, an integer
  for a date, a date and time without a time zone; and a file that declares nothing.
- Broken entries named *.yaml (a folder, a dangling link, a pipe) are reported, not skipped.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops.cli import main
from adclick_ops.config import ConfigError, load_pipeline_file
from adclick_ops.config.yamlio import read_12

from tests.support.hardening import PROJECT, count, dump

LAB2, FLASK = "airflow_lab2.yaml", "airflow_lab2_flask.yaml"
SHIPPED = {name: yaml.safe_load((PROJECT / "pipelines" / name).read_text()) for name in (LAB2, FLASK)}
SCHEMA = PROJECT / "schema" / "pipeline.schema.json"
MUTATIONS = int(os.environ.get("SCHEMA_MUTATIONS", "600"))

# Raw YAML tokens, written into the file as they are.
TOKENS = [
    "yes", "no", "on", "off", "Y", "n", "True", "FALSE", "010", "0o17", "0x1F", "1:30", "1_000", "0b101", "1e3", "-0x1", "+12",
    "'3'", '"true"', "3", "3.5", "-1", "0", "1.0", "true", "false", "null", "~", '""', "[]", "{}", "[a, a]", "{a: 1}",
    "2024-01-01", "'2024-01-01'", "2024-01-01T00:00:00", "2024-01-01T00:00:00Z", "2024-01-01 06:00:00+02:00", "'2024-13-01'",
    "1704067200", ".inf", "-.inf", ".nan", "'{{ conn.x.password }}'", "'{{ run_id }}'", "'{% if %}'", "'a{b'", "'x' ",
    "'" + "t" * 101 + "'", "'@hourly'", "'@continuous'", "'@annually'", "'@fortnightly'", "'*/5 * * * *'", "'61 * * * *'",
    "'0 0 31 2 *'", "'* * * *'", "'http://evil.example/x.csv'", "'s3://bucket/x.csv'", "'../x'", "'a@example.com'", "'a@@b'",
    "'{{x}}@b.co'", "all_done", "bogus_rule", "load_data_task", "'adclick_ops.tasks.load_data'", "os.system",
    "airflow.providers.standard.operators.empty.EmptyOperator", "'Airflow_Lab2'", "'bad id!'", "123456789012345678901234567890",
    "'\\u00e9'", "'line\\nbreak'", "65536", "64", "65", "11", "86401",
]  # fmt: skip


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _parent(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def mutate(rng: random.Random) -> str:
    """One mutated pipeline file, as YAML text."""
    name = rng.choice([LAB2, LAB2, FLASK])
    data = json.loads(json.dumps(SHIPPED[name], default=str))
    raw: dict[str, str] = {}
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        paths = _paths(data)
        if not paths:
            break
        path = rng.choice(paths)
        parent, key = _parent(data, path), path[-1]
        kind = rng.random()
        if kind < 0.6:
            marker = f"__RAW_{len(raw)}__"
            raw[marker] = rng.choice(TOKENS)
            parent[key] = marker
        elif kind < 0.75 and isinstance(parent, dict):
            del parent[key]
        elif kind < 0.85 and isinstance(parent, dict):
            parent[rng.choice(["colour", "Tasks", "retry_delay", "schedule_interval"])] = 1
        elif isinstance(parent, list):
            parent.append(parent[key])
        else:
            marker = f"__RAW_{len(raw)}__"
            raw[marker] = rng.choice(TOKENS)
            parent[key] = marker
    text = dump(data)
    for marker, token in raw.items():
        text = text.replace(f"'{marker}'", token).replace(marker, token)
    if rng.random() < 0.01:
        text = "{}\n"
    return text


def check_jsonschema(files: list[Path]) -> set[str]:
    """The files check-jsonschema refuses (one run over all of them)."""
    exe = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(exe), "--schemafile", str(SCHEMA), "-o", "json", *map(str, files)], capture_output=True, text=True, timeout=600
    )
    report = json.loads(result.stdout)
    return {Path(e["filename"]).name for e in report["errors"]} | {Path(e["filename"]).name for e in report.get("parse_errors", [])}


def test_every_file_the_schema_refuses_validate_refuses(tmp_path):
    rng = random.Random(13)
    files = []
    for i in range(MUTATIONS):
        path = tmp_path / f"m{i:04d}.yaml"
        path.write_text(mutate(rng))
        files.append(path)
    refused_by_schema = check_jsonschema(files)
    assert len(refused_by_schema) > MUTATIONS // 3, "the mutations hardly ever break the schema: the generator is off"
    only_schema = []
    refused_by_validate = set()
    for path in files:
        try:
            load_pipeline_file(path)
        except ConfigError:
            refused_by_validate.add(path.name)
    only_schema = sorted(refused_by_schema - refused_by_validate)
    count("schema agreement: mutated files", len(files))
    count("schema agreement: refused by the schema", len(refused_by_schema))
    assert not only_schema, "refused by the JSON Schema but accepted by validate:\n" + "\n---\n".join(
        f"{n}:\n{(tmp_path / n).read_text()}" for n in only_schema[:3]
    )


def test_the_shipped_files_pass_the_schema():
    assert check_jsonschema(sorted((PROJECT / "pipelines").glob("airflow_*.yaml"))) == set()


# --- YAML 1.1-only spellings and coercion ---------------------------------------------------------

YAML11_ONLY = st.one_of(
    st.sampled_from(["yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"]),
    st.integers(1, 777).map(lambda n: "0" + oct(n)[2:]),  # 010: 8 in YAML 1.1, 10 in 1.2
    st.integers(0, 999).map(lambda n: f"0o{n:o}"),  # an integer in 1.2, text in 1.1
    st.tuples(st.integers(1, 99), st.integers(0, 59)).map(lambda t: f"{t[0]}:{t[1]:02d}"),  # 1:30 -> 90
    st.integers(1000, 10**7).map(lambda n: f"{n:_}"),  # 1_000
    st.integers(1, 64).map(lambda n: f"0b{n:b}"),
    st.integers(1, 9).map(lambda n: f"{n}e{n}"),  # a float in 1.2, text in 1.1
    st.integers(1, 255).map(lambda n: f"-0x{n:x}"),
)
SCALAR_FIELDS = [
    ("Airflow_Lab2", "catchup"),
    ("Airflow_Lab2", "max_active_runs"),
    ("Airflow_Lab2", "description"),
    ("Airflow_Lab2", "training", "target"),
    ("Airflow_Lab2", "training", "split", "test_size"),
    ("Airflow_Lab2", "training", "split", "random_state"),
    ("Airflow_Lab2", "training", "split", "stratify"),
    ("Airflow_Lab2", "training", "estimator", "params", "max_iter"),
    ("Airflow_Lab2", "notify", "email", "on_failure"),
    ("Airflow_Lab2", "default_args", "retries"),
    ("Airflow_Lab2", "tags", 0),
    ("Airflow_Lab2", "training", "features", 1),
]
FIELDS = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _field(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def write_with(folder: Path, path: tuple, token: str) -> Path:
    data = json.loads(json.dumps(SHIPPED[LAB2], default=str))
    _parent(data, path)[path[-1]] = "__RAW__"
    text = dump(data).replace("'__RAW__'", token).replace("__RAW__", token)
    folder.mkdir(exist_ok=True)
    target = folder / LAB2
    target.write_text(text)
    return target


@FIELDS
@given(token=YAML11_ONLY, path=st.sampled_from(SCALAR_FIELDS))
def test_yaml_11_only_spellings_are_refused_with_quote_it(tmp_path_factory, token, path):
    count("strict: YAML 1.1-only spelling")
    target = write_with(tmp_path_factory.mktemp("p"), path, token)
    with pytest.raises(ConfigError) as raised:
        load_pipeline_file(target)
    mine = [i for i in raised.value.issues if i.field == _field(path)]
    assert mine, raised.value
    assert "quote it" in mine[0].message and repr(token) in mine[0].message and mine[0].line


@FIELDS
@given(token=YAML11_ONLY)
def test_quoted_the_same_spelling_is_text(tmp_path_factory, token):
    count("strict: quoted YAML 1.1 spelling is text")
    target = write_with(tmp_path_factory.mktemp("p"), ("Airflow_Lab2", "description"), f"'{token}'")
    assert load_pipeline_file(target).dags["Airflow_Lab2"].description == token


@FIELDS
@given(token=YAML11_ONLY, key=st.booleans())
def test_a_key_spelled_in_yaml_11_only_is_refused(tmp_path_factory, token, key):
    count("strict: YAML 1.1-only key")
    folder = tmp_path_factory.mktemp("p")
    text = (PROJECT / "pipelines" / LAB2).read_text().replace("  catchup: false\n", f"  catchup: false\n  {token}: 1\n")
    (folder / LAB2).write_text(text)
    with pytest.raises(ConfigError, match="quote it|unknown field|not text"):
        load_pipeline_file(folder / LAB2)


# (field, token, words): a value of the wrong type is never converted
COERCIONS = [
    (("Airflow_Lab2", "max_active_runs"), "'1'", "valid integer"),
    (("Airflow_Lab2", "max_active_runs"), "1.5", "valid integer"),
    (("Airflow_Lab2", "max_active_runs"), "true", "valid integer"),
    (("Airflow_Lab2", "catchup"), "1", "valid boolean"),
    (("Airflow_Lab2", "catchup"), "'false'", "valid boolean"),
    (("Airflow_Lab2", "description"), "42", "valid string"),
    (("Airflow_Lab2", "description"), "true", "valid string"),
    (("Airflow_Lab2", "training", "split", "test_size"), "'0.3'", "valid number"),
    (("Airflow_Lab2", "training", "split", "test_size"), "true", "valid number"),
    (("Airflow_Lab2", "training", "target"), "3", "valid string"),
    (("Airflow_Lab2", "tags", 0), "7", "valid string"),
    (("Airflow_Lab2", "notify", "email", "to", 0), "12", "valid string"),
    (("Airflow_Lab2", "start_date"), "1704067200", "numbers are not read as dates"),
    (("Airflow_Lab2", "start_date"), "2024-01-01T00:00:00", "expected a date"),
    (("Airflow_Lab2", "start_date"), "2024-01-01 00:00:00", "expected a date"),
    (("Airflow_Lab2", "start_date"), "'2024-02-30'", "not a real date"),
    (("Airflow_Lab2", "start_date"), "'20240101'", "expected a date"),
    (("Airflow_Lab2", "start_date"), "1969-12-31", "outside"),
    (("Airflow_Lab2", "training", "estimator", "params", "max_iter"), "'1000'", None),
]


@pytest.mark.parametrize("path,token,words", COERCIONS, ids=[f"{p[-1]}={t}" for p, t, _ in COERCIONS])
def test_no_value_is_coerced_to_another_type(tmp_path, path, token, words):
    count("strict: no coercion")
    target = write_with(tmp_path, path, token)
    if path[-1] == "max_iter":  # text is allowed in params (solver: lbfgs); scikit-learn's check refuses '1000' in validate
        code = main(["validate", str(target)])
        assert code == 1
        return
    with pytest.raises(ConfigError) as raised:
        load_pipeline_file(target)
    mine = [i for i in raised.value.issues if i.field == _field(path)]
    assert mine and mine[0].line, raised.value
    assert words in mine[0].message, mine[0]


@pytest.mark.parametrize(
    "token,value",
    [
        ("2024-01-01", "2024-01-01"),
        ("'2024-01-01'", "2024-01-01"),
        ("2024-01-01T06:00:00Z", "2024-01-01T06:00:00+00:00"),
        ("'2024-01-01T08:00:00+02:00'", "2024-01-01T08:00:00+02:00"),
        ("2024-01-01t06:00:00.5z", "2024-01-01T06:00:00.500000+00:00"),
    ],
)
def test_dates_and_zoned_datetimes_are_accepted_quoted_or_not(tmp_path, token, value):
    target = write_with(tmp_path, ("Airflow_Lab2", "start_date"), token)
    assert load_pipeline_file(target).dags["Airflow_Lab2"].start_date.isoformat() == value


@given(st.integers(-(10**12), 10**12) | st.floats(allow_nan=False))
@settings(max_examples=100, deadline=None, database=None)
def test_yaml_12_reading_of_plain_numbers_is_json_numbers(n):
    """What the reader takes as a number is the number JSON (and editors) see."""
    count("strict: YAML 1.2 numbers")
    text = json.dumps(n)
    if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", text):
        assert read_12(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "{}\n", "{}  # nothing\n", "---\n{}\n", "null\n", "~\n"])
def test_a_file_that_declares_nothing_is_refused(tmp_path, capsys, text):
    count("strict: empty file")
    (tmp_path / "empty.yaml").write_text(text)
    code = main(["validate", str(tmp_path / "empty.yaml")])
    err = capsys.readouterr().err
    assert code == 1 and "empty.yaml" in err and ("empty" in err or "top level" in err), err


def _make_entry(kind: str, path: Path) -> None:
    if kind == "folder":
        path.mkdir()
    elif kind == "dangling link":
        path.symlink_to(path.parent / "gone.yaml")
    elif kind == "pipe":
        os.mkfifo(path)
    elif kind == "link to a folder":
        (path.parent / "real").mkdir()
        path.symlink_to(path.parent / "real")


@pytest.mark.parametrize(
    "kind,words",
    [("folder", "a folder"), ("dangling link", "does not exist"), ("pipe", "not a regular file"), ("link to a folder", "a folder")],
)
def test_an_entry_named_yaml_that_is_not_a_readable_file_is_reported(tmp_path, capsys, kind, words):
    count("strict: odd *.yaml entries")
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    _make_entry(kind, folder / "odd.yaml")
    code = main(["validate", str(folder)])
    err = capsys.readouterr().err
    assert code == 1
    odd = [line for line in err.splitlines() if "odd.yaml" in line]
    assert odd and words in odd[0], err
    assert "airflow_lab2.yaml" not in err  # the good files are not hurt


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_reported(tmp_path, capsys):
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    (folder / "secret.yaml").write_text("A: {}\n")
    (folder / "secret.yaml").chmod(0)
    assert main(["validate", str(folder)]) == 1
    assert "secret.yaml: cannot read file" in capsys.readouterr().err


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, capsys, monkeypatch):
    """The size is checked on the directory entry: a file that grows without end is never read whole."""
    import builtins

    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(10**12)  # a sparse terabyte
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    assert main(["validate", str(big)]) == 1
    assert "limited to" in capsys.readouterr().err
    assert str(big) not in opened
