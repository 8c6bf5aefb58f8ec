"""The generated JSON Schema in the engines that other tools run it with: check-jsonschema (ECMA-262
regular expressions, the `regress` engine) and the JavaScript RegExp of yaml-language-server (node).
Long generated values must not make either run away; the bound is a subprocess timeout, not a timed
assertion. Where validate and the schema both judge a value, they agree."""

from __future__ import annotations

import copy
import io
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


# --- every field x hostile values: the schema's verdict is validate's ------------------------------------------------
#
# Each document below sets every field of a pipeline file; each case replaces one value with a hostile one, written
# into the YAML text as a raw token (.nan, 1.0, 9223372036854775808, ...) or as a double-quoted string with escapes
# (NUL, other control characters, look-alike braces, ...). The schema judges it as check-jsonschema does, in process:
# check-jsonschema's own YAML loader (ruamel, dates as text, floats as floats) and its own validator (its format
# checks and its ECMA-262 `regress` patterns); validate judges it with load_pipeline_file. A sample of the cases also
# goes through the real check-jsonschema command, to show that the in-process verdict is the command's.

FULL = copy.deepcopy(LAB2)
FULL["Airflow_Lab2"].update(is_paused_upon_creation=True, on_invalid="stop")
FULL["Airflow_Lab2"]["default_args"]["execution_timeout_secs"] = 3600
FULL["Airflow_Lab2"]["training"]["estimator"]["params"].update(C=1.0, tol=0.0001, random_state=7)
FULL["Airflow_Lab2"]["training"]["promotion"] = {
    "metric": "roc_auc",
    "min_improvement": 0.01,
    "min_accuracy": 0.5,
    "min_roc_auc": 0.5,
    "fail_run": "below_floor",
    "holdout": 0.2,
    "on_incomparable": "keep",
}
FULL["Airflow_Lab2"]["notify"]["email"]["monitor_url"] = "http://localhost:5555"
FULL["Airflow_Lab2"]["notify"]["email"]["headline_metric"] = "f1"
FULL["Airflow_Lab2"]["tasks"]["load_data_task"].update(
    retries=2, retry_delay_sec=10, execution_timeout_secs=60, doc_md="Loads the data.", trigger_rule="all_success"
)
FLOORED = copy.deepcopy(LAB2)
FLOORED["Airflow_Lab2"]["training"]["min_accuracy"] = 0.5
FLOORED["Airflow_Lab2"]["training"]["estimator"] = {"name": "random_forest", "params": {"n_estimators": 10, "n_jobs": 1, "max_depth": 3}}
FLASK = yaml.safe_load((PROJECT / "pipelines" / "airflow_lab2_flask.yaml").read_text())
FLASK["Airflow_Lab2_Flask"]["monitor"]["serve_for"] = 60
DOCUMENTS = {"full": FULL, "floored": FLOORED, "flask": FLASK}

CONTROLS = [*"\x00\x01\x08\t\n\x0b\x0c\r\x0e\x1b\x1f\x7f\x80\x85\x9f", "\xa0", "\u2028", "\ufeff", "\u200b"]
LOOKALIKES = [*"\ufe37\ufe38\ufe5b\ufe5c\uff5b\uff5d", "{\uff05", "{\uff03", "{\ufe5f", "{\ufe6a", "\uff05", "\uff03 1"]
TEMPLATES = ["{{ conn.x.password }}", "{{ run_id }}", "{% raw %}", "{", "}"]
STRINGS = CONTROLS + LOOKALIKES + TEMPLATES
# Raw tokens that YAML 1.1 and 1.2 read alike (the others are refused with "quote it", see below)
NUMBERS = [
    ".nan", ".NaN", ".inf", "-.inf", "+.inf", "1.0", "0.0", "-0.0", "1.5", "2.0", "10.0", "11.0", "64.0", "65.0", "-1.0",
    "1000.0", "1.0e+3", "1.0e+30", "1.0e+400", "-1.0e+400", "65535.0", "65536.0", "4294967295.0", "4294967296.0",
    "2147483647", "2147483648", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1" + "0" * 30,
    "1" + "0" * 400, "0.3", "true", "null",
]  # fmt: skip


# A string or a boolean field gets these few numbers (a type error either side); a number field gets them all.
FEW_NUMBERS = [".nan", "1.0", "1" + "0" * 30, "true", "null"]
# The schema cannot say that a dependency names a task of the same DAG (no keyword relates two values of a document):
# validate alone refuses a dependency on no task, and these fields are left out here.
UNRELATABLE = "dependencies"


def _leaves(data, prefix=()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _leaves(value, (*prefix, i))
    else:
        yield prefix, data


def _put(data, path: tuple, value):
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def hostile_cases():
    """(case, document, path, token): every leaf of every document with each hostile value, as YAML writes it."""
    for name, doc in DOCUMENTS.items():
        for path, value in _leaves(doc):
            if UNRELATABLE in path:
                continue
            where = f"{name}:{'.'.join(map(str, path))}"
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            for token in NUMBERS if numeric else FEW_NUMBERS:
                yield f"{where}={token[:24]}", name, path, token
            if isinstance(value, str):
                for i, bad in enumerate(STRINGS):
                    middle = len(value) // 2
                    text = value[:middle] + bad + value[middle:] if i % 2 else value + bad
                    yield f"{where}+{bad!r}", name, path, json.dumps(text)


def cj_parts():
    """check-jsonschema's own YAML loader and validator, as its command builds them for SCHEMA (default options)."""
    from check_jsonschema.formats import FormatOptions
    from check_jsonschema.parsers import ParserSet
    from check_jsonschema.regex_variants import RegexImplementation, RegexVariantName
    from check_jsonschema.schema_loader import SchemaLoader

    regex = RegexImplementation(RegexVariantName.default)
    validator = SchemaLoader(str(SCHEMA)).get_validator(SCHEMA, {}, FormatOptions(regex_impl=regex), regex, False)
    parsers = ParserSet()

    def load(text: str):
        return parsers.parse_data_with_path(io.BytesIO(text.encode()), "case.yaml", "yaml")

    return load, validator


def validate_accepts(path: Path, text: str) -> bool:
    try:
        load_pipeline_file(path, text=text)
    except ConfigError:
        return False
    return True


def test_the_schema_and_validate_agree_on_every_field_with_hostile_values(tmp_path):
    """Each case is loaded for the schema as check-jsonschema loads it: the document once, the hostile value alone
    (a scalar reads the same wherever it stands), then put in its place; the command's sample checks the shortcut."""
    load, validator = cj_parts()
    loaded = {name: load(dump(doc)) for name, doc in DOCUMENTS.items()}
    tokens: dict[str, object] = {}
    marked: dict[tuple, str] = {}
    disagree, sample, n = [], {}, 0
    rng = random.Random(31)
    for n, (case, name, path, token) in enumerate(hostile_cases(), 1):
        if (name, path) not in marked:
            marked[name, path] = dump(_put(DOCUMENTS[name], path, "__HOSTILE__")).replace("'__HOSTILE__'", "__HOSTILE__")
        text = marked[name, path].replace("__HOSTILE__", token)
        if token not in tokens:
            tokens[token] = load(f"v: {token}\n")["v"]
        theirs = validator.is_valid(_put(loaded[name], path, tokens[token]))
        ours = validate_accepts(tmp_path / f"c{n:05d}.yaml", text)
        if ours != theirs:
            disagree.append(f"{case}: validate {'accepts' if ours else 'refuses'}, the schema {'accepts' if theirs else 'refuses'}")
        if rng.random() < 0.03:
            (tmp_path / f"c{n:05d}.yaml").write_text(text, encoding="utf-8")
            sample[tmp_path / f"c{n:05d}.yaml"] = theirs
    count("schema engines: field x hostile value, schema and validate", n)
    assert n > 2500 and not disagree, f"{len(disagree)} of {n} disagree:\n" + "\n".join(disagree[:40])
    exe = Path(sys.executable).with_name("check-jsonschema")
    if not exe.exists():
        mandatory_in_ci("check-jsonschema is not installed (requirements-dev.txt)")
    result = subprocess.run(
        [str(exe), "--schemafile", str(SCHEMA), "-o", "json", *map(str, sample)], capture_output=True, text=True, timeout=ENGINE_TIMEOUT
    )
    report = json.loads(result.stdout)
    refused = {Path(e["filename"]) for e in report["errors"]} | {Path(e["filename"]) for e in report.get("parse_errors", [])}
    count("schema engines: hostile values through the check-jsonschema command", len(sample))
    assert len(sample) > 50 and {p for p, ok in sample.items() if not ok} == refused


# --- what JSON Schema cannot say: validate alone refuses these, each for its stated reason ------------------------

BEYOND_THE_SCHEMA = [
    # YAML 1.1 reads `yes` as true and `3e-1` as text, YAML 1.2 (editors, check-jsonschema) as text and 0.3: validate
    # refuses the spelling ("quote it"), the schema only ever sees the YAML 1.2 value, the same as of 'yes' or 0.3.
    (("Airflow_Lab2", "description"), "yes", "quote it"),
    (("Airflow_Lab2", "training", "split", "test_size"), "3e-1", "quote it"),
    # JSON has one number 1 = 1.0: where a parameter reads an integer as a count and a float as a share, the schema
    # lets 1 through as the share 1.0, and validate refuses the count 1 (min_samples_split counts from 2).
    (("Airflow_Lab2", "training", "estimator"), "{name: random_forest, params: {min_samples_split: 1}}", "expected an integer >= 2"),
    # No keyword relates two values of a document: a dependency on a task the DAG does not have.
    (("Airflow_Lab2", "tasks", "send_email", "dependencies"), "[no_such_task]", "is not a task of this DAG"),
]


@pytest.mark.parametrize("path,token,words", BEYOND_THE_SCHEMA, ids=[t for _, t, _ in BEYOND_THE_SCHEMA])
def test_what_the_schema_cannot_express_validate_refuses_alone(tmp_path, path, token, words):
    load, validator = cj_parts()
    text = dump(_put(LAB2, path, "__HOSTILE__")).replace("'__HOSTILE__'", token).replace("__HOSTILE__", token)
    assert validator.is_valid(load(text)), "the schema now refuses it: move the case to the agreement test"
    with pytest.raises(ConfigError) as raised:
        load_pipeline_file(tmp_path / "p.yaml", text=text)
    assert any(words in issue.message and issue.line for issue in raised.value.issues), raised.value


def test_a_lone_surrogate_is_refused_by_validate_and_stops_check_jsonschema(tmp_path):
    """A lone surrogate (YAML "\\ud800") has no UTF-8 spelling, so no database or mail can carry it. check-jsonschema's
    ECMA-262 engine cannot even read it: the command fails (its exit code 1, a traceback) instead of reporting the field,
    and its validator raises. JavaScript engines (yaml-language-server) match it with the schema's class [\\ud800-\\udfff]."""
    path = tmp_path / "p.yaml"
    path.write_text(dump(_put(LAB2, ("Airflow_Lab2", "tags", 1), "__HOSTILE__")).replace("__HOSTILE__", '"m\\ud800l"'))
    # libyaml refuses the escape; the models refuse the character where a reader lets it through
    with pytest.raises(ConfigError, match=r"p\.yaml:10: invalid YAML: found invalid Unicode character escape code"):
        load_pipeline_file(path)
    load, validator = cj_parts()
    with pytest.raises(UnicodeEncodeError):
        validator.is_valid(load(path.read_text()))
    exe = Path(sys.executable).with_name("check-jsonschema")
    if not exe.exists():
        mandatory_in_ci("check-jsonschema is not installed (requirements-dev.txt)")
    result = subprocess.run([str(exe), "--schemafile", str(SCHEMA), str(path)], capture_output=True, text=True, timeout=ENGINE_TIMEOUT)
    assert result.returncode != 0 and "surrogates not allowed" in result.stderr
