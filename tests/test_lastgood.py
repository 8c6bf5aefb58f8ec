"""Last-known-good rendering: a pipeline file that stops validating keeps its DAGs on its last valid version.

In-process with a real DagBag on the call stack (as when the DAG processor imports the DAG file),
for every kind of mistake validate reports; the whole DAG file through Airflow's DagBag in a
subprocess, and `airflow dags test`, in the tests further down.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adclick_ops import lastgood

from tests.support import edit_yaml, parse_dags, run_airflow
from tests.support.last_good import break_file, copy_pipelines, parse
from tests.support.pipeline_mistakes import LAB2, MISTAKES

# Mistakes beyond validate's message tests: how the file is written, templates, schedules, references.
MORE = [
    ("empty file", None, "", "", "file is empty"),
    ("not UTF-8", None, b"Airflow_Lab2:\n  description: caf\xe9\n", "", "not valid UTF-8"),
    ("a list at the top", None, "- Airflow_Lab2\n", "", "found a list at the top level"),
    (
        "template outside the placeholders",
        'subject: "[adclick-ops] {{ dag.dag_id }} {{ status }}: {{ metric }}, {{ version }}"',
        'subject: "{{ macros.uuid.os }}"',
        "Airflow_Lab2.notify.email.subject",
        "",
    ),
    ("cron of six fields", 'schedule: "@daily"', 'schedule: "0 0 * * * *"', "Airflow_Lab2.schedule", ""),
    (
        "trigger of a DAG no file declares",
        "dag_id: Airflow_Lab2_Flask",
        "dag_id: Nowhere",
        "Airflow_Lab2.trigger.dag_id",
        "is not declared",
    ),
]
CASES = MISTAKES + MORE


@pytest.fixture
def pipelines(tmp_path: Path) -> Path:
    return copy_pipelines(tmp_path)


def snapshot_of(pipelines: Path, name: str = LAB2) -> dict:
    return json.loads((pipelines.parent / "last-good" / f"{name}.json").read_text())


def settings(dag) -> dict:
    return dag.get_task("load_data_task").op_kwargs["settings"]


def test_a_valid_parse_records_each_file_whole(pipelines):
    dags, errors = parse(pipelines)
    assert errors == {} and set(dags) == {"Airflow_Lab2", "Airflow_Lab2_Flask"}
    for name in (LAB2, "airflow_lab2_flask.yaml"):
        snap = snapshot_of(pipelines, name)
        text = (pipelines / name).read_text()
        assert snap["text"] == text and snap["sha256"] == lastgood.sha256(text) and snap["file"] == name
        assert snap["commit"] is None  # the test's folder is not in a git work tree
        assert snap["recorded_at"].endswith("Z")
    assert "last-good" not in dags["Airflow_Lab2"].tags
    assert sorted(p.name for p in (pipelines.parent / "last-good").iterdir()) == [f"{LAB2}.json", "airflow_lab2_flask.yaml.json"]


@pytest.mark.parametrize("name,old,new,field,words", CASES, ids=[c[0] for c in CASES])
def test_any_mistake_keeps_the_last_valid_version_running_and_files_the_errors(pipelines, name, old, new, field, words):
    before, _ = parse(pipelines)
    recorded = snapshot_of(pipelines)
    good = settings(before["Airflow_Lab2"])
    break_file(pipelines / LAB2, old, new)

    dags, errors = parse(pipelines)
    assert set(dags) == {"Airflow_Lab2", "Airflow_Lab2_Flask"}
    kept = dags["Airflow_Lab2"]
    assert settings(kept) == good  # the last valid settings, whatever the file says now
    assert kept.timetable == before["Airflow_Lab2"].timetable and kept.schedule == "@daily"  # scheduled runs go on
    assert kept.max_active_runs == 1 and kept.start_date == before["Airflow_Lab2"].start_date
    assert [t.task_id for t in kept.topological_sort()] == [t.task_id for t in before["Airflow_Lab2"].topological_sort()]
    assert "last-good" in kept.tags and "last-good" not in dags["Airflow_Lab2_Flask"].tags
    # both at once: the file's own errors, as validate gives them, under the file's name
    assert set(errors) == {LAB2}
    message = errors[LAB2]
    assert message.startswith("ConfigError: invalid pipeline file\n")
    assert f"{LAB2}:" in message and field in message and words in message
    assert f"{lastgood.RUNS_MARKER} Airflow_Lab2 from sha256 {recorded['sha256'][:12]}" in message
    # the docs open with what runs and why
    opening = kept.doc_md.split("\n\n")[0]
    assert opening.startswith("**Running the last valid version of ") and LAB2 in opening and recorded["sha256"][:12] in opening
    assert message.splitlines()[1] in kept.doc_md  # the first error
    # a broken file is never recorded
    assert snapshot_of(pipelines) == recorded


def test_a_valid_edit_replaces_the_snapshot_and_the_tag_goes(pipelines):
    parse(pipelines)
    break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robsut]")
    dags, errors = parse(pipelines)
    assert "last-good" in dags["Airflow_Lab2"].tags and settings(dags["Airflow_Lab2"])["scalers"] == ["minmax", "standard"]
    break_file(pipelines / LAB2, "scalers: [robsut]", "scalers: [robust]")
    dags, errors = parse(pipelines)
    assert errors == {}
    assert "last-good" not in dags["Airflow_Lab2"].tags and settings(dags["Airflow_Lab2"])["scalers"] == ["robust"]
    assert not dags["Airflow_Lab2"].doc_md.startswith("**Running")
    assert snapshot_of(pipelines)["text"] == (pipelines / LAB2).read_text()
    # and the new version is the one kept from now on
    break_file(pipelines / LAB2, "scalers: [robust]", "scalers: [robsut]")
    dags, _ = parse(pipelines)
    assert settings(dags["Airflow_Lab2"])["scalers"] == ["robust"]


def test_a_deleted_file_takes_its_dags_and_its_snapshot_with_it(pipelines):
    parse(pipelines)
    (pipelines / LAB2).unlink()
    # the monitor DAG stays valid: nothing triggers it now, and it declares nothing missing
    dags, errors = parse(pipelines)
    assert set(dags) == {"Airflow_Lab2_Flask"} and errors == {}
    assert not (pipelines.parent / "last-good" / f"{LAB2}.json").exists()
    # put back broken: it is a new file now, never validated
    (pipelines / LAB2).write_text("Airflow_Lab2:\n  tasks: {}\n")
    dags, errors = parse(pipelines)
    assert "Airflow_Lab2" not in dags and lastgood.RUNS_MARKER not in errors[LAB2]


def test_a_new_file_that_never_validated_gets_its_import_error_and_no_dag(pipelines):
    parse(pipelines)
    (pipelines / "new.yaml").write_text("New_Dag:\n  schedule: '@sometimes'\n  tasks: {}\n")
    dags, errors = parse(pipelines)
    assert "New_Dag" not in dags and set(errors) == {"new.yaml"}
    assert "New_Dag.schedule" in errors["new.yaml"] and "runs instead" not in errors["new.yaml"]
    assert not (pipelines.parent / "last-good" / "new.yaml.json").exists()


def test_a_file_valid_alone_but_not_in_its_folder_is_never_recorded(pipelines):
    parse(pipelines)
    (pipelines / "other.yaml").write_text((pipelines / "airflow_lab2_flask.yaml").read_text().replace("Airflow_Lab2_Flask:", "Other:", 1))
    edit_yaml(pipelines / "other.yaml", lambda d: d["Other"].update(trigger={"dag_id": "Missing"}))
    dags, errors = parse(pipelines)
    assert "Other" not in dags and "other.yaml" in errors
    assert not (pipelines.parent / "last-good" / "other.yaml.json").exists()


def test_a_snapshot_that_no_longer_validates_is_not_used_and_the_error_says_why(pipelines):
    parse(pipelines)
    folder = pipelines.parent / "last-good"
    # a version recorded by an older release, that today's code refuses
    old = (pipelines / LAB2).read_text().replace("scalers: [minmax, standard]", "scalers: [zscore]")
    lastgood.write_snapshot(folder, LAB2, old, None)
    break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robsut]")
    dags, errors = parse(pipelines)
    assert "Airflow_Lab2" not in dags
    assert lastgood.NOT_RUN_MARKER in errors[LAB2] and "does not validate any more" in errors[LAB2]
    assert "'zscore'" in errors[LAB2] and "'robsut'" in errors[LAB2]
    # validate says the same: nothing of this file runs
    from adclick_ops.config import report

    (note,) = report.check([str(pipelines)]).notes
    assert note.startswith(f"{pipelines / LAB2} is invalid, and Airflow does not run its last valid version either: ")
    assert "does not validate any more" in note and "runs that version" not in note


@pytest.mark.parametrize("cwd", ["project", "pipelines", "elsewhere"])
def test_the_last_valid_version_runs_whatever_the_working_folder(pipelines, cwd, monkeypatch):
    # Airflow's processes start from the project (make run, compose's /opt/airflow): the files are then named
    # relative to it, the snapshots' files absolute; both name the same file
    from adclick_ops.config import report

    monkeypatch.chdir({"project": pipelines.parent, "pipelines": pipelines, "elsewhere": pipelines.parent.parent}[cwd])
    before, _ = parse(pipelines)
    break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robsut]")
    dags, errors = parse(pipelines)
    assert "last-good" in dags["Airflow_Lab2"].tags and settings(dags["Airflow_Lab2"]) == settings(before["Airflow_Lab2"])
    assert lastgood.RUNS_MARKER in errors[LAB2] and "'robsut'" in errors[LAB2]
    (note,) = report.check([str(pipelines)]).notes
    assert note.endswith("Airflow runs that version until this file validates")


def test_a_snapshot_that_is_not_whole_is_never_rendered(pipelines):
    parse(pipelines)
    path = pipelines.parent / "last-good" / f"{LAB2}.json"
    whole = path.read_bytes()
    break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robsut]")
    data = json.loads(whole)
    torn = [whole[:n] for n in range(0, len(whole), max(1, len(whole) // 40))]
    # whole JSON, wrong content: the text cut short, or another file's
    torn.append(json.dumps({**data, "text": data["text"][: len(data["text"]) // 2]}).encode())
    torn.append(json.dumps({**data, "file": "other.yaml"}).encode())
    torn.append(json.dumps({**data, "format": 99}).encode())
    for content in torn:
        path.write_bytes(content)
        dags, errors = parse(pipelines)
        assert "Airflow_Lab2" not in dags, content[-80:]
        assert lastgood.NOT_RUN_MARKER in errors[LAB2] and "cannot be used" in errors[LAB2]


def test_on_invalid_stop_drops_the_dag_as_before(pipelines):
    edit_yaml(pipelines / LAB2, lambda d: d["Airflow_Lab2"].update(on_invalid="stop"))
    parse(pipelines)
    edit_yaml(pipelines / LAB2, lambda d: d["Airflow_Lab2"]["training"].update(scalers=["robsut"]))
    dags, errors = parse(pipelines)
    assert "Airflow_Lab2" not in dags and "on_invalid: stop" in errors[LAB2]
    from adclick_ops.config import report

    (note,) = report.check([str(pipelines)]).notes
    assert "does not run its last valid version either" in note and note.endswith("sets on_invalid: stop.")


def test_the_snapshot_folder_follows_the_environment(pipelines, tmp_path, monkeypatch):
    monkeypatch.setenv("ADCLICK_OPS_LAST_GOOD", str(tmp_path / "elsewhere"))
    parse(pipelines)
    assert (tmp_path / "elsewhere" / f"{LAB2}.json").exists() and not (pipelines.parent / "last-good").exists()


def test_the_git_commit_is_recorded_in_a_work_tree(pipelines):
    import subprocess

    git = ["git", "-C", str(pipelines.parent), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "pipelines"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "pipelines"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    parse(pipelines)
    assert snapshot_of(pipelines)["commit"] == head


@pytest.mark.airflow
def test_through_the_dag_file_and_airflow_dags_test_a_broken_file_runs_its_last_valid_version(
    airflow_home, pipelines, smtp_server, tmp_path
):
    """The DAG file in Airflow's DagBag (a subprocess, as the DAG processor), then a whole run with `airflow dags test`."""
    env = airflow_home(**smtp_server.connection_env())
    report = parse_dags(env)
    assert report["import_errors"] == {}
    good = report["dags"]["Airflow_Lab2"]["tasks"]["load_data_task"]["op_kwargs"]["settings"]
    assert good["scalers"] == ["minmax", "standard"]
    # a change of scalers that would run, together with a typo that makes the file invalid
    break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robust]\n    colour: blue")
    report = parse_dags(env)
    lab2 = report["dags"]["Airflow_Lab2"]
    assert lab2["tasks"]["load_data_task"]["op_kwargs"]["settings"] == good
    assert lab2["doc_md"].startswith("**Running the last valid version of")
    ((key, message),) = report["import_errors"].items()
    assert key.endswith(LAB2) and "Airflow_Lab2.training.colour: unknown field 'colour'" in message and lastgood.RUNS_MARKER in message

    result = run_airflow(["dags", "test", "Airflow_Lab2"], env)
    assert result.returncode == 0, result.stdout[-5000:]
    metrics = json.loads(next((tmp_path / "runs" / "Airflow_Lab2").glob("*/metrics.json")).read_text())
    assert metrics["scalers"] == ["minmax", "standard"] and metrics["accuracy"] >= 0.95  # the last valid settings ran
    assert len(smtp_server.messages) == 1  # the report of the run

    (pipelines / LAB2).unlink()
    report = parse_dags(env)
    assert set(report["dags"]) == {"Airflow_Lab2_Flask"} and report["import_errors"] == {}


def test_the_last_good_tag_is_reserved(pipelines):
    edit_yaml(pipelines / LAB2, lambda d: d["Airflow_Lab2"].update(tags=["adclick", "last-good"]))
    dags, errors = parse(pipelines)
    assert "Airflow_Lab2" not in dags and "Airflow_Lab2.tags: the tag 'last-good' is set by adclick-ops" in errors[LAB2]


PARSER = """
import json, os, sys
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag
from adclick_ops.render import render

pipelines, count = Path(sys.argv[1]), int(sys.argv[2])
bag = DagBag(str(pipelines), collect_dags=False)

def process_file(self):
    rendered = {}
    self.import_errors.clear()
    render(rendered, pipelines)
    return rendered

for _ in range(count):
    dags = process_file(bag)
    lab2 = dags.get("Airflow_Lab2")
    print("@@" + json.dumps({
        "test_size": lab2.get_task("load_data_task").op_kwargs["settings"]["split"]["test_size"] if lab2 else None,
        "kept": bool(lab2 and "last-good" in lab2.tags),
        "errors": list(bag.import_errors.values()),
    }), flush=True)
"""

WRITER = """
import os, sys, tempfile
from pathlib import Path

path, stop = Path(sys.argv[1]), Path(sys.argv[2])
versions = [Path(p).read_text() for p in sys.argv[3:]]
i = 0
while not stop.exists():
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".edit")
    with os.fdopen(fd, "w") as fh:
        fh.write(versions[i % len(versions)])
    os.replace(tmp, path)  # as editors and git write a file
    i += 1
print(i)
"""


def test_parsing_while_files_are_edited_never_renders_a_torn_snapshot(pipelines, airflow_home, tmp_path):
    """Two DAG processors parse (and record) while the file flips between two valid versions and a broken one."""
    import subprocess
    import sys

    text = (pipelines / LAB2).read_text()
    versions = {"a": text, "b": text.replace("test_size: 0.3", "test_size: 0.25"), "broken": text.replace("test_size: 0.3", "test_size: 3")}
    for name, content in versions.items():
        (tmp_path / f"{name}.txt").write_text(content)
    env = airflow_home()
    parse(pipelines)  # version a is recorded: from now on, some version always runs
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(pipelines / LAB2),
            str(stop),
            *(str(tmp_path / f"{n}.txt") for n in ("a", "broken", "b", "broken")),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        parsers = [
            subprocess.Popen(
                [sys.executable, "-c", PARSER, str(pipelines), "40"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=600) for p in parsers]
    finally:
        stop.touch()
        edits = int(writer.communicate(timeout=60)[0])
    assert edits > 10
    results = []
    for (out, err), parser in zip(outputs, parsers, strict=True):
        assert parser.returncode == 0, err[-3000:]
        results += [json.loads(line[2:]) for line in out.splitlines() if line.startswith("@@")]
    assert len(results) == 80
    for r in results:
        assert r["test_size"] in (0.3, 0.25), r  # always a whole valid version, kept or current
        assert not any("cannot be used" in e or "does not validate any more" in e for e in r["errors"]), r
        if r["kept"]:
            assert len(r["errors"]) == 1 and "test_size" in r["errors"][0] and lastgood.RUNS_MARKER in r["errors"][0]
    assert any(r["kept"] for r in results) and any(not r["kept"] for r in results)
    # what is left is a whole snapshot of one of the valid versions
    assert lastgood.read_snapshot(pipelines.parent / "last-good", LAB2).text in (versions["a"], versions["b"])
    assert [p.name for p in (pipelines.parent / "last-good").iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_validate_and_plan_say_when_a_file_differs_from_the_version_that_runs(pipelines, capsys):
    import subprocess

    from adclick_ops import plan
    from adclick_ops.config import report

    git = ["git", "-C", str(pipelines.parent), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "pipelines"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "pipelines"], check=True)
    parse(pipelines)
    assert report.check([str(pipelines)]).notes == []  # what runs is what is there
    break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robsut]")
    (note,) = report.check([str(pipelines)]).notes
    assert note.startswith(f"{pipelines / LAB2} differs from the last valid version that Airflow runs (sha256 ")
    assert note.endswith("Airflow runs that version until this file validates")
    assert "runs that version until" in plan.plan(pipelines).new.note
    break_file(pipelines / LAB2, "scalers: [robsut]", "scalers: [robust]")
    (note,) = report.check([str(pipelines / LAB2)]).notes
    assert note.endswith("Airflow renders this version at its next parse")
    assert plan.render(plan.plan(pipelines), "text").count("differs from the last valid version") == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["pipeline file", "snapshot"])
def test_a_fifo_in_place_of_a_recorded_file_is_reported_never_waited_on(pipelines, where):
    """A FIFO blocks whoever opens it for reading until a writer comes: validate, the watch and the DAG file
    must report it (or ignore the snapshot) without opening it. pytest-timeout fails the test if one waits."""
    from adclick_ops.config import report
    from adclick_ops.pipeline_watch import PipelineWatch

    parse(pipelines)  # records both files
    watch = PipelineWatch(pipelines)
    assert watch.check() == []
    if where == "pipeline file":
        target = pipelines / LAB2
    else:
        target = pipelines.parent / "last-good" / f"{LAB2}.json"
        break_file(pipelines / LAB2, "scalers: [minmax, standard]", "scalers: [robsut]")
    target.unlink()
    os.mkfifo(target)

    result = report.check([str(pipelines)])
    assert result.notes == []  # nothing to compare with: no "differs from the last valid version" line
    dags, errors = parse(pipelines)
    if where == "pipeline file":
        assert "not a regular file" in errors[LAB2]
        assert "Airflow_Lab2" in dags and "last-good" in dags["Airflow_Lab2"].tags  # the last valid version runs
        (change,) = watch.check()
        assert change.kind == "broken" and "not a regular file" in change.line()
    else:
        assert "'robsut'" in errors[LAB2] and "Airflow_Lab2" not in dags  # an unreadable snapshot is never rendered
        assert "snapshot" in errors[LAB2] or "last valid" in errors[LAB2]
