"""The generated JSON Schema in the engines that other tools run it with: check-jsonschema (ECMA-262
regular expressions, the `regress` engine) and the JavaScript RegExp of yaml-language-server (node).
Long generated values must not make either run away; the bound is a subprocess timeout, not a timed
assertion. Where validate and the schema both judge a value, they agree."""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import regress
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick_ops.config import ConfigError, load_pipeline_file
from adclick_ops.config.models import EMAIL_SCHEMA, _email

from tests.support import mandatory_in_ci
from tests.support.hardening import PROJECT, count, dump

SCHEMA = PROJECT / "schema" / "pipeline.schema.json"
LAB2 = yaml.safe_load((PROJECT / "pipelines" / "airflow_lab2.yaml").read_text())
ENGINE_TIMEOUT = 240  # seconds for all values together; one catastrophic pattern alone took more than 60 s per value


def labels(n: int, size: int = 8, last: str = "a") -> str:
    return ".".join(f"l{i:0{size - 1}d}"[:size] for i in range(n - 1)) + f".{last}"


def long_values(rng: random.Random) -> dict[str, list[str]]:
    """By where they go: long values of every string format, near misses first (they make backtracking engines search)."""
    emails = [
        "a@" + labels(200),  # the report's case: 200 labels, about 1.8 KB here, 12 KB with longer labels
        "a@" + labels(200, 60),
        "a@" + labels(200, 60, last="-"),
        "x" * 12_000 + "@example.com",
        "a@" + "b" * 12_000 + ".com",
        "a@" + "-a." * 4_000 + "com",
        "a@" + labels(30, 8),  # 254 characters or fewer: valid
        "".join(rng.choice("abc.-@") for _ in range(12_000)),
    ]
    templates = [
        "{{ " + " " * 12_000,
        "{{" + "\t" * 12_000 + "ds }",
        "x{" * 6_000,
        "{ " * 6_000,
        "{{ ds }}" * 1_500,
        "{{ ds }}" * 1_500 + "{{",
        "{" * 12_000,
        "".join(rng.choice("{} %#dst\t") for _ in range(12_000)),
    ]
    paths = [
        "s3://" + "a:/" * 4_000,
        "file://" + "x" * 12_000 + "://",
        "dags/" + "a/" * 6_000 + "x.csv",
        "S3://" + "::" * 6_000,
        "".join(rng.choice("s3:/.") for _ in range(12_000)),
    ]
    return {"email": emails, "template": templates, "path": paths, "cron": ["* " * 6_000, "*" * 12_000 + " x"]}


def document(where: str, value: str) -> dict:
    data = copy.deepcopy(LAB2)
    dag = data["Airflow_Lab2"]
    if where == "email":
        dag["notify"]["email"]["to"] = [value]
    elif where == "template":
        dag["notify"]["email"]["subject"] = value
        dag["trigger"]["conf"]["upstream_run_id"] = value
    elif where == "path":
        dag["training"]["dataset"] = value
    else:
        dag["schedule"] = value
    return data


def refused_by_validate(path: Path) -> bool:
    try:
        load_pipeline_file(path)
    except ConfigError:
        return True
    return False


def test_check_jsonschema_judges_long_values_in_bounded_time_as_validate_does(tmp_path):
    exe = Path(sys.executable).with_name("check-jsonschema")
    if not exe.exists():
        mandatory_in_ci("check-jsonschema is not installed (requirements-dev.txt)")
    files: dict[Path, str] = {}
    for where, values in long_values(random.Random(23)).items():
        for i, value in enumerate(values):
            path = tmp_path / f"{where}-{i}.yaml"
            path.write_text(dump(document(where, value)))
            files[path] = where
    try:
        result = subprocess.run(
            [str(exe), "--schemafile", str(SCHEMA), "-o", "json", *map(str, files)], capture_output=True, text=True, timeout=ENGINE_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"check-jsonschema ran past {ENGINE_TIMEOUT} s on {len(files)} files of long values: a pattern backtracks")
    report = json.loads(result.stdout)
    refused = {Path(e["filename"]) for e in report["errors"]} | {Path(e["filename"]) for e in report.get("parse_errors", [])}
    count("schema engines: long values in check-jsonschema", len(files))
    for path, where in files.items():
        if where in ("email", "template"):  # formats the schema describes in full
            assert (path in refused) == refused_by_validate(path), (path.name, path in refused)
        elif path not in refused:  # elsewhere the schema is the looser judge
            assert not refused_by_validate(path) or where in ("path", "cron"), path.name


def schema_patterns() -> list[str]:
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and isinstance(value, str):
                    found.append(value)
                elif key == "patternProperties":
                    found.extend(value)
                    walk(list(value.values()))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(SCHEMA.read_text()))
    walk(json.loads((PROJECT / "schema" / "defaults.schema.json").read_text()))
    return sorted(set(found))


NODE_SCRIPT = r"""
const {patterns, values} = JSON.parse(require('fs').readFileSync(0, 'utf8'));
let n = 0;
for (const p of patterns) {
  let re;
  try { re = new RegExp(p, 'u'); } catch (e) { re = new RegExp(p); }
  for (const v of values) { re.test(v); n++; }
}
console.log(n);
"""


def test_every_schema_pattern_runs_in_bounded_time_in_javascript():
    """yaml-language-server (VS Code's YAML extension) checks the schema's patterns with JavaScript's RegExp."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        mandatory_in_ci("node is not installed (Debian's nodejs; .ci/run installs it)")
    patterns = schema_patterns()
    values = [v for vs in long_values(random.Random(29)).values() for v in vs]
    payload = json.dumps({"patterns": patterns, "values": values})
    try:
        result = subprocess.run([node, "-e", NODE_SCRIPT], input=payload, capture_output=True, text=True, timeout=ENGINE_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"JavaScript's RegExp ran past {ENGINE_TIMEOUT} s on the schema's {len(patterns)} patterns: one backtracks")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(patterns) * len(values)
    count("schema engines: pattern x long value in JavaScript", len(patterns) * len(values))


ADDRESS = st.from_regex(r"\A[a-z0-9.+-]{1,12}@[a-z0-9.-]{1,40}\Z") | st.text(alphabet="ab.-@1", max_size=40)


def ecma_email(value: str) -> bool:
    """EMAIL_SCHEMA as an ECMA-262 engine (check-jsonschema's) reads it."""
    return (
        len(value) <= EMAIL_SCHEMA["maxLength"]
        and regress.Regex(EMAIL_SCHEMA["pattern"]).find(value) is not None
        and all(regress.Regex(rule["pattern"]).find(value) is not None for rule in EMAIL_SCHEMA["allOf"])
        and regress.Regex(EMAIL_SCHEMA["not"]["pattern"]).find(value) is None
    )


@settings(max_examples=400, deadline=None)
@given(ADDRESS)
def test_the_schema_s_email_rule_is_validate_s(value):
    try:
        _email(value)
        accepted = True
    except ValueError:
        accepted = False
    count("schema engines: e-mail rule agreement")
    assert ecma_email(value) == accepted, value
