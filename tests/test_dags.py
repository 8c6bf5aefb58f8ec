"""The rendered DAGs: what Airflow's DagBag sees in dags/, and how YAML knobs change it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import edit_yaml, parse_dags

EDGES = {
    "load_data_task": ["data_preprocessing_task"],
    "data_preprocessing_task": ["separate_data_outputs_task"],
    "separate_data_outputs_task": ["build_save_model_task"],
    "build_save_model_task": ["load_model_task"],
    "load_model_task": ["my_trigger_task", "send_email"],
    "send_email": [],
    "my_trigger_task": [],
}


def test_dags_folder_renders_the_two_dags_with_the_seed_graph(airflow_home):
    report = parse_dags(airflow_home())
    assert report["import_errors"] == {}
    assert set(report["dags"]) == {"Airflow_Lab2", "Airflow_Lab2_Flask"}
    lab2 = report["dags"]["Airflow_Lab2"]
    assert {t: i["downstream"] for t, i in lab2["tasks"].items()} == EDGES
    assert lab2["tasks"]["my_trigger_task"]["trigger_rule"] == "all_done"
    assert lab2["tasks"]["my_trigger_task"]["trigger_dag_id"] == "Airflow_Lab2_Flask"
    assert lab2["tasks"]["send_email"]["operator"] == "ReportEmailOperator"
    assert lab2["max_active_runs"] == 1 and lab2["catchup"] is False
    assert lab2["tasks"]["load_data_task"]["retry_delay"] == 30.0  # default_args.retry_delay_sec
    assert "@daily" in lab2["schedule"] or "0 0 * * *" in lab2["schedule"]
    flask = report["dags"]["Airflow_Lab2_Flask"]
    assert list(flask["tasks"]) == ["start_Flask_API"]
    assert flask["max_active_runs"] == 1


def test_parsing_imports_neither_pandas_nor_scikit_learn(airflow_home):
    assert parse_dags(airflow_home())["heavy_modules"] == []


def test_parsing_prints_no_warnings(airflow_home):
    # the DAG processor prints a file's warnings into the log of every parse; dag-factory's imports
    # of Airflow 2 paths used to add three deprecation warnings each time
    assert parse_dags(airflow_home())["warnings"] == {}


def test_a_bad_file_gives_one_import_error_and_the_other_dags_still_load(airflow_home, pipelines):
    (pipelines / "broken.yaml").write_text(
        "Broken:\n  tasks:\n    t:\n      operator: airflow.providers.standard.operators.empty.EmptyOperator\n      dependencies: [nope]\n"
    )
    report = parse_dags(airflow_home())
    assert set(report["dags"]) == {"Airflow_Lab2", "Airflow_Lab2_Flask"}
    assert len(report["import_errors"]) == 1
    ((key, message),) = report["import_errors"].items()
    assert key.endswith("broken.yaml")
    assert "broken.yaml:5: Broken.tasks.t.dependencies[0]: 'nope' is not a task of this DAG" in message


# (YAML section under Airflow_Lab2, its new values, task, rendered attribute, expected value)
KNOBS = [
    pytest.param(
        ("notify", "email"),
        {"to": ["a@example.org", "b@example.org"]},
        "send_email",
        "to",
        ["a@example.org", "b@example.org"],
        id="recipients",
    ),
    pytest.param(
        ("trigger",), {"dag_id": "Other_Dag", "external": True}, "my_trigger_task", "trigger_dag_id", "Other_Dag", id="trigger target"
    ),
    # without the e-mail, a failure is still recorded
    pytest.param(
        ("notify", "email"), {"on_failure": False}, "load_data_task", "on_failure_callback", ["FailureRecorder"], id="failure alerts off"
    ),
    pytest.param(("default_args",), {"retry_delay_sec": 5, "retries": 3}, "load_data_task", "retry_delay", 5.0, id="retries"),
]


def section(data: dict, path: tuple[str, ...]) -> dict:
    for key in ("Airflow_Lab2", *path):
        data = data[key]
    return data


@pytest.mark.parametrize("path,values,task,attribute,expected", KNOBS)
def test_knobs_change_the_rendered_dag(airflow_home, pipelines, path, values, task, attribute, expected):
    assert parse_dags(airflow_home())["dags"]["Airflow_Lab2"]["tasks"][task][attribute] != expected
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: section(d, path).update(values))
    after = parse_dags(airflow_home())
    assert after["import_errors"] == {}
    assert after["dags"]["Airflow_Lab2"]["tasks"][task][attribute] == expected


def test_failure_alerts_are_wired_by_default(airflow_home):
    tasks = parse_dags(airflow_home())["dags"]["Airflow_Lab2"]["tasks"]
    # the failure e-mail, which records the failure first (adclick_ops.failures); a retry is recorded too
    assert all(t["on_failure_callback"] == ["RecordingFailureNotifier"] for t in tasks.values())
    assert all(t["on_retry_callback"] == ["FailureRecorder"] for t in tasks.values())


@pytest.mark.parametrize("how", [[], ["--airflow"]])
def test_graph_command_prints_the_graph_alone_on_stdout(airflow_home, how):
    result = subprocess.run(
        [sys.executable, "-m", "adclick_ops.cli", "graph", "Airflow_Lab2", *how],
        env=airflow_home(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "Airflow_Lab2  (schedule: @daily)" and len(lines) == 1 + len(EDGES)
    assert "  load_model_task (PythonOperator) -> my_trigger_task, send_email" in lines
    assert "  my_trigger_task (TriggerDagRunOperator)  [trigger_rule=all_done]" in lines
    assert "  send_email (ReportEmailOperator)" in lines


def _random_dags(seed: int, count: int) -> dict:
    """`count` DAGs with random acyclic graphs, trigger rules and schedules; edges only from earlier to later tasks."""
    import random

    from adclick_ops.config.models import TRIGGER_RULES

    rng = random.Random(seed)
    dags = {}
    for n in range(count):
        names = rng.sample([f"t{i}" for i in range(10)], rng.randint(1, 8))
        tasks = {}
        for i, name in enumerate(names):
            task = {"operator": "airflow.providers.standard.operators.empty.EmptyOperator"}
            ups = rng.sample(names[:i], rng.randint(0, min(i, 3)))
            if ups:
                task["dependencies"] = ups
            if rng.random() < 0.3:
                task["trigger_rule"] = rng.choice(TRIGGER_RULES)
            tasks[name] = task
        dags[f"G{n}"] = {"schedule": rng.choice(["@daily", "@hourly", "0 3 * * 1", None]), "tasks": tasks}
    return dags


def test_the_graph_read_from_the_pipelines_is_the_graph_airflow_builds(airflow_home, pipelines):
    """`graph` reads the pipeline files without importing Airflow; `graph --airflow` prints what dag-factory and
    Airflow built. Line for line the same for the shipped DAGs and 40 generated ones, in a topological order."""
    import yaml

    (pipelines / "generated.yaml").write_text(yaml.safe_dump(_random_dags(7, 40), sort_keys=False))
    script = """
import json, sys
from adclick_ops.cli import _declared_graph, _rendered_graph
ids = ["Airflow_Lab2", "Airflow_Lab2_Flask"] + [f"G{n}" for n in range(40)]
print(json.dumps({i: [_declared_graph(i, None), _rendered_graph(i, None)] for i in ids}))
"""
    result = subprocess.run([sys.executable, "-c", script], env=airflow_home(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    graphs = json.loads(result.stdout.splitlines()[-1])
    assert len(graphs) == 42
    for dag_id, (declared, rendered) in graphs.items():
        assert declared[0] == rendered[0], dag_id
        assert sorted(declared[1:]) == sorted(rendered[1:]), dag_id
        seen: set[str] = set()
        for line in declared[1:]:
            task_id = line.split()[0]
            # every task comes after all its upstream tasks
            ups = {other.split()[0] for other in declared[1:] if " -> " in other and task_id in other.split(" -> ")[1].split(", ")}
            assert ups <= seen, (dag_id, task_id)
            seen.add(task_id)


def test_the_graph_without_the_runtime_and_of_a_broken_file(pipelines, tmp_path):
    """The graph needs no Airflow; a DAG whose file is broken gets the file's errors, an unknown id the known ones."""
    code = (
        "import sys; sys.modules['airflow'] = sys.modules['dagfactory'] = sys.modules['sklearn'] = None; "
        "from adclick_ops.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "ADCLICK_OPS_PIPELINES": str(pipelines), "ADCLICK_OPS_HOME": str(pipelines.parent)}
    ok = subprocess.run([sys.executable, "-c", code, "graph", "Airflow_Lab2_Flask"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "Airflow_Lab2_Flask  (schedule: none: triggered only)\n  start_Flask_API (PythonOperator)\n"
    (pipelines / "broken.yaml").write_text("Broken:\n  tasks:\n    t:\n      operator: os.system\n")
    bad = subprocess.run([sys.executable, "-c", code, "graph", "Broken"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and bad.stdout == ""
    assert "broken.yaml:4: Broken.tasks.t.operator: operator 'os.system' is not allowed" in bad.stderr
    unknown = subprocess.run([sys.executable, "-c", code, "graph", "Nope"], capture_output=True, text=True, env=env, timeout=120)
    assert unknown.returncode == 1 and "DAG 'Nope' not found; declared: Airflow_Lab2, Airflow_Lab2_Flask" in unknown.stderr


@pytest.mark.airflow
def test_dag_processor_records_the_bad_file_and_keeps_the_good_dags_active(airflow_home, pipelines, tmp_path):
    """The real DAG processor: the error is stored for the YAML file, the good DAGs are not marked stale."""
    import sqlite3
    import time

    from adclick_ops.embedded.stack import Stack

    (pipelines / "broken.yaml").write_text("Broken:\n  tasks:\n    t:\n      operator: os.system\n")
    env = airflow_home()
    stack = Stack(env, Path(env["AIRFLOW_HOME"]))
    stack.start("dag-processor", ["dag-processor"])
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    try:
        deadline = time.monotonic() + 240
        errors, dags = [], []
        while time.monotonic() < deadline and not (errors and len(dags) == 2):
            time.sleep(2)
            assert not stack.dead(), stack.log_tail("dag-processor")
            with sqlite3.connect(db) as con:
                errors = con.execute("select filename, stacktrace from import_error").fetchall()
                dags = con.execute("select dag_id, is_stale, has_import_errors from dag").fetchall()
    finally:
        stack.stop()
    assert len(errors) == 1, (errors, stack.log_tail("dag-processor"))
    filename, message = errors[0]
    assert filename.endswith("pipelines/broken.yaml")
    assert "broken.yaml:4: Broken.tasks.t.operator: operator 'os.system' is not allowed" in message
    assert sorted(dags) == [("Airflow_Lab2", 0, 0), ("Airflow_Lab2_Flask", 0, 0)]


def test_dag_docs_are_the_description_then_the_pipeline_file_as_written(airflow_home, pipelines):
    report = parse_dags(airflow_home())
    for dag_id, name in (("Airflow_Lab2", "airflow_lab2.yaml"), ("Airflow_Lab2_Flask", "airflow_lab2_flask.yaml")):
        text = (pipelines / name).read_text()
        description = yaml.safe_load(text)[dag_id]["description"]
        assert report["dags"][dag_id]["doc_md"] == f"{description}\n\n```yaml\n{text.rstrip()}\n```"


def test_dag_docs_show_markdown_but_never_run_html_and_no_text_closes_the_yaml_block(airflow_home, pipelines):
    path = pipelines / "airflow_lab2.yaml"
    description = "Trains **the** model <script>alert(1)</script> <img src=x onerror=alert(2)>"
    edit_yaml(path, lambda d: d["Airflow_Lab2"].update(description=description))
    hostile = "# ```\n# </code><script>alert(3)</script> {{ macros.uuid.os.system('id') }}\n# ````` a longer run\n"
    path.write_text(hostile + path.read_text())
    report = parse_dags(airflow_home())
    assert report["import_errors"] == {}
    docs = report["dags"]["Airflow_Lab2"]["doc_md"]
    head, _, block = docs.partition("\n\n")
    assert head == "Trains **the** model &lt;script>alert(1)&lt;/script> &lt;img src=x onerror=alert(2)>"
    # the file verbatim, fenced by more backticks than any run in it: nothing in it ends the block
    assert block == f"``````yaml\n{path.read_text().rstrip()}\n``````"
