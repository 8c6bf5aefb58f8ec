"""`validate --format text|json|github`, its exit codes, and named files checked in the context of their folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adclick_ops.config import Issue
from adclick_ops.config.report import annotation

from tests.support import PROJECT, run_cli
from tests.support.pipeline_mistakes import LAB2, MISTAKES

FLASK = "airflow_lab2_flask.yaml"
GENERATED = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


cli = run_cli  # adclick-ops in this process (tests.support.run_cli)


def copy_pipelines(root: Path) -> Path:
    folder = root / uuid.uuid4().hex / "pipelines"  # fresh paths: the validation cache keys on path and mtime
    shutil.copytree(PROJECT / "pipelines", folder)
    return folder


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def unescape_property(text: str) -> str:
    # the order in which the GitHub Actions runner decodes a workflow command's properties
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


def unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def parse_annotation(line: str) -> dict[str, str]:
    """A `::error k=v,...::message` workflow command, decoded as the runner decodes it."""
    assert line.startswith("::error "), line
    props, _, data = line[len("::error ") :].partition("::")
    fields = dict(p.split("=", 1) for p in props.split(","))
    return {**{k: unescape_property(v) for k, v in fields.items()}, "message": unescape_data(data)}


def as_text(error: dict) -> str:
    return str(Issue(error["file"], error["line"], error["field"], error["message"]))


# --- json and github, against the text answer ------------------------------------------------------


def test_json_of_valid_pipelines(tmp_path):
    folder = copy_pipelines(tmp_path)
    code, out, err = cli("validate", "--format", "json", folder)
    assert code == 0, err
    report = json.loads(out)
    assert report["valid"] is True and report["errors"] == []
    assert sorted(Path(f).name for f in report["files"]) == ["airflow_lab2.yaml", "airflow_lab2_flask.yaml", "defaults.yaml"]
    assert report["dags"] == ["Airflow_Lab2", "Airflow_Lab2_Flask"]


@pytest.mark.parametrize("name,old,new,field,words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_every_error_in_json_and_as_one_annotation(tmp_path, name, old, new, field, words):
    folder = copy_pipelines(tmp_path)
    replace(folder / LAB2, old, new)
    text_code, _, text_err = cli("validate", folder)
    code, out, _ = cli("validate", "--format", "json", folder)
    gh_code, gh_out, _ = cli("validate", "--format", "github", folder)
    assert text_code == code == gh_code == 1

    report = json.loads(out)
    assert report["valid"] is False
    errors = report["errors"]
    # the same errors as the text format, line for line
    assert [as_text(e) for e in errors] == text_err.splitlines()[:-1]
    assert all(set(e) == {"file", "line", "field", "found", "expected", "message"} for e in errors)
    assert any(words in e["message"] for e in errors)
    if field:
        assert field in [e["field"] for e in errors]
    lab2 = [e for e in errors if Path(e["file"]).name == LAB2]
    assert lab2 and all(isinstance(e["line"], int) and 1 <= e["line"] <= len((folder / LAB2).read_text().splitlines()) for e in lab2)

    annotations = gh_out.splitlines()
    assert len(annotations) == len(errors)
    for line, error in zip(annotations, errors, strict=True):
        decoded = parse_annotation(line)
        assert decoded["file"] == error["file"] and decoded["message"] == error["message"]
        assert decoded.get("line") == (str(error["line"]) if error["line"] else None)
        assert error["field"] in decoded["title"]


@pytest.mark.parametrize("name,old,new,field,words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_found_and_expected_agree_with_the_message(tmp_path, name, old, new, field, words):
    folder = copy_pipelines(tmp_path)
    replace(folder / LAB2, old, new)
    for e in json.loads(cli("validate", "--format", "json", folder)[1])["errors"]:
        if "; expected " in e["message"]:
            assert e["expected"] == e["message"].rsplit("; expected ", 1)[1]
        if e["message"].endswith(f"found {e['found']}"):
            continue
        if "; found " in e["message"]:
            assert e["found"] == e["message"].rsplit("; found ", 1)[1], e


def test_found_and_expected_of_a_value_out_of_range(tmp_path):
    folder = copy_pipelines(tmp_path)
    replace(folder / LAB2, "test_size: 0.3", "test_size: 1.5")
    (error,) = json.loads(cli("validate", "--format", "json", folder)[1])["errors"]
    assert error == {
        "file": str(folder / LAB2),
        "line": 25,
        "field": "Airflow_Lab2.training.split.test_size",
        "found": "1.5",
        "expected": "less than 1",
        "message": "input should be less than 1; found 1.5",
    }


# Mistakes that field validation reports independently of each other, so that several in one file
# must all be reported (graph, cross-file and whole-model checks only run on otherwise valid input).
INDEPENDENT = {
    "test_size above 1",
    "unknown scaler",
    "unknown estimator",
    "unknown field",
    "invalid e-mail address",
    "callable outside the allow-list",
    "operator outside the allow-list",
    "duplicate feature",
    "wrong type",
    "negative retries",
    "path escaping the project",
    "unknown schedule preset",
    "unknown trigger rule",
    "value of no allowed form",
    "missing operator",
}


@given(picked=st.lists(st.sampled_from([m for m in MISTAKES if m[0] in INDEPENDENT]), min_size=2, max_size=6, unique_by=lambda m: m[0]))
@GENERATED
def test_several_mistakes_each_give_one_json_error_and_one_annotation(tmp_path, picked):
    folder = copy_pipelines(tmp_path)
    path = folder / LAB2
    text = path.read_text()
    for _, old, new, _, _ in picked:
        assume(old in text)
        text = text.replace(old, new, 1)
    path.write_text(text)
    code, out, _ = cli("validate", "--format", "json", folder)
    report = json.loads(out)
    assert code == 1 and report["valid"] is False
    fields = [e["field"] for e in report["errors"]]
    for name, _, _, field, _ in picked:
        assert field in fields, (name, fields)
    assert all(e["file"] == str(path) and e["line"] for e in report["errors"])
    _, gh_out, _ = cli("validate", "--format", "github", folder)
    assert [(a["file"], a["line"]) for a in map(parse_annotation, gh_out.splitlines())] == [
        (e["file"], str(e["line"])) for e in report["errors"]
    ]


@given(
    path=st.text(min_size=1, max_size=40),
    line=st.one_of(st.none(), st.integers(1, 10_000)),
    field=st.text(max_size=40),
    message=st.text(min_size=1, max_size=200),
)
@settings(max_examples=500, deadline=None, database=None)
def test_annotations_survive_any_text(path, line, field, message):
    """Colons, commas, percent signs and line breaks in a path, field or message reach GitHub intact."""
    command = annotation(Issue(path, line, field, message))
    assert "\n" not in command and "\r" not in command
    decoded = parse_annotation(command)
    assert decoded["file"] == path and decoded["message"] == message
    assert decoded.get("line") == (str(line) if line else None)
    assert decoded["title"] == "adclick-ops: " + (field or "pipeline file")


# --- exit codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_a_missing_path_is_a_usage_error(tmp_path, fmt):
    code, out, err = cli("validate", "--format", fmt, tmp_path / "nope.yaml")
    assert code == 2
    assert f"{tmp_path / 'nope.yaml'}: no such file or folder" in err
    if fmt == "github":
        assert parse_annotation(out.strip())["message"] == err.strip()
    else:
        assert out == ""


def test_an_unknown_format_is_a_usage_error(tmp_path):
    code, _, err = cli("validate", "--format", "xml", tmp_path)
    assert code == 2 and "invalid choice: 'xml'" in err


def test_exit_codes_are_in_the_help():
    _, out, _ = cli("validate", "--help")
    assert "0 valid, 1 invalid pipelines, 2 usage or I/O error" in " ".join(out.split())


# --- named files, checked with the rest of their folder ---------------------------------------------


def test_a_named_file_resolves_its_trigger_target_in_its_folder(tmp_path):
    folder = copy_pipelines(tmp_path)
    code, out, err = cli("validate", folder / LAB2)
    assert code == 0, err
    assert "1 file(s), 1 DAG(s): Airflow_Lab2" in out


def test_a_named_file_is_not_blamed_for_another_files_own_error(tmp_path):
    folder = copy_pipelines(tmp_path)
    (folder / "other.yaml").write_text("Other:\n  colour: blue\n  tasks: {}\n")
    assert cli("validate", folder / LAB2)[0] == 0
    code, _, err = cli("validate", folder / "other.yaml")
    assert code == 1 and "other.yaml:2: Other.colour: unknown field 'colour'" in err


def test_a_change_that_breaks_an_unnamed_file_is_reported(tmp_path):
    folder = copy_pipelines(tmp_path)
    replace(folder / FLASK, "Airflow_Lab2_Flask:", "Renamed_Flask:")
    code, _, err = cli("validate", folder / FLASK)
    assert code == 1
    assert f"{folder / LAB2}:45: Airflow_Lab2.trigger.dag_id: DAG 'Airflow_Lab2_Flask' is not declared" in err


def test_a_dag_id_declared_twice_is_reported_whichever_file_is_named(tmp_path):
    folder = copy_pipelines(tmp_path)
    shutil.copy(folder / FLASK, folder / "zz_copy.yaml")
    for named in (FLASK, "zz_copy.yaml"):
        code, _, err = cli("validate", folder / named)
        assert code == 1 and "DAG id 'Airflow_Lab2_Flask' is also declared in" in err, named


def test_a_named_defaults_file_is_checked(tmp_path):
    folder = copy_pipelines(tmp_path)
    (folder / "defaults.yaml").write_text("default_args:\n  retrys: 2\n")
    assert cli("validate", folder / LAB2)[0] == 0
    code, _, err = cli("validate", folder / "defaults.yaml")
    assert code == 1 and "defaults.yaml:2: default_args.retrys: unknown field 'retrys'" in err


@given(
    kinds=st.lists(st.sampled_from(["good", "bad"]), min_size=1, max_size=6),
    named=st.lists(st.integers(0, 5), max_size=6),
)
@GENERATED
def test_only_the_named_files_errors_are_reported(tmp_path, kinds, named):
    folder = copy_pipelines(tmp_path)
    files = []
    for i, kind in enumerate(kinds):
        path = folder / f"extra_{i}.yaml"
        body = f"Extra_{i}:\n  tasks:\n    t:\n      operator: airflow.providers.standard.operators.empty.EmptyOperator\n"
        path.write_text(body + ("  colour: blue\n" if kind == "bad" else ""))
        files.append(path)
    chosen = sorted({files[i % len(files)] for i in named}) + [folder / LAB2]
    code, out, _ = cli("validate", "--format", "json", *chosen)
    report = json.loads(out)
    expected_bad = sorted(str(p) for p in chosen if p != folder / LAB2 and kinds[files.index(p)] == "bad")
    assert sorted({e["file"] for e in report["errors"]}) == expected_bad
    assert code == (1 if expected_bad else 0)
    assert sorted(report["files"]) == sorted(map(str, chosen))


# --- what validate, plan and schema import ------------------------------------------------------------

HEAVY = ("airflow", "dagfactory", "flask", "pandas", "sklearn", "numpy", "waitress", "gunicorn", "requests")
# validate checks estimator parameters with scikit-learn (the shipped pipeline sets max_iter): that
# much of the scientific stack it may import, never Airflow or the servers
RUNTIME = ("airflow", "dagfactory", "flask", "waitress", "gunicorn", "requests")


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--format", "json"],
        ["validate", "--format", "github", "pipelines/airflow_lab2.yaml"],
        ["plan", "--format", "markdown"],
        ["schema", "--check"],
    ],
    ids=lambda a: " ".join(a),
)
def test_the_ci_commands_import_nothing_of_the_runtime(args, tmp_path):
    if args[0] == "plan":
        from tests.support.git_repos import commit_all, init, require_git

        require_git()
        repo = init(tmp_path / "repo")
        shutil.copytree(PROJECT / "pipelines", repo / "pipelines")
        commit_all(repo)
        cwd = repo
    else:
        cwd = PROJECT
    forbidden = RUNTIME if args[0] == "validate" else HEAVY
    code = (
        "import sys, json; from adclick_ops.cli import main; rc = main(sys.argv[1:]); "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(forbidden)!r})))); sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_a_runtime_command_without_the_runtime_says_what_to_install():
    code = (
        "import sys; sys.modules['airflow'] = sys.modules['dagfactory'] = None; "
        "from adclick_ops.cli import main; sys.exit(main(['graph', 'Airflow_Lab2', '--airflow']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "pip install 'adclick-ops[airflow]'" in result.stderr and "Traceback" not in result.stderr
