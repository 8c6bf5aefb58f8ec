"""`adclick-ops plan`: what the working tree's pipelines change against a git revision, with real git."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops import plan as planning
from adclick_ops.config.models import SCALERS, TRIGGER_RULES

from tests.support import PROJECT, run_cli
from tests.support.git_repos import commit_all, git, init, require_git

LAB2, FLASK = "airflow_lab2.yaml", "airflow_lab2_flask.yaml"
EMPTY = "airflow.providers.standard.operators.empty.EmptyOperator"
GENERATED = settings(
    max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A git repository whose HEAD holds a copy of pipelines/; the test runs inside it."""
    require_git()
    root = init(tmp_path / "repo")
    shutil.copytree(PROJECT / "pipelines", root / "pipelines")
    commit_all(root, "base")
    monkeypatch.chdir(root)
    monkeypatch.delenv("ADCLICK_OPS_PIPELINES", raising=False)
    return root


cli = run_cli  # adclick-ops in this process (tests.support.run_cli)


def plan_json(*args: str) -> tuple[int, dict]:
    code, out, err = cli("plan", "--format", "json", *args)
    assert code in (0, 1), err
    return code, json.loads(out)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def changes_of(report: dict, dag_id: str) -> list[tuple[str, object, object]]:
    (dag,) = [d for d in report["dags"] if d["dag_id"] == dag_id]
    return [(c["field"], c["old"], c["new"]) for c in dag["changes"]]


# --- the acceptance case --------------------------------------------------------------------------


def test_test_size_scalers_and_a_recipient_are_exactly_three_changes(repo):
    lab2 = repo / "pipelines" / LAB2
    edit(lab2, "test_size: 0.3", "test_size: 0.2")
    edit(lab2, "scalers: [minmax, standard]", "scalers: [robust]")
    edit(lab2, "to: [ml-team@example.com]", "to: [ml-team@example.com, lead@example.com]")

    code, report = plan_json()
    assert code == 1  # changes to review
    assert report["changed"] is True and report["base"]["valid"] and report["new"]["valid"]
    assert [d["dag_id"] for d in report["dags"]] == ["Airflow_Lab2"]
    (dag,) = report["dags"]
    assert dag["status"] == "changed"
    assert dag["tasks_added"] == dag["tasks_removed"] == dag["edges_added"] == dag["edges_removed"] == []
    assert changes_of(report, "Airflow_Lab2") == [
        ("training.split.test_size", 0.3, 0.2),
        ("training.scalers", ["minmax", "standard"], ["robust"]),
        ("notify.email.to", ["ml-team@example.com"], ["ml-team@example.com", "lead@example.com"]),
    ]

    _, text, _ = cli("plan")
    assert [line.strip() for line in text.splitlines() if line.startswith("    ~ ")] == [
        "~ training.split.test_size: 0.3 → 0.2",
        '~ training.scalers: ["minmax", "standard"] → ["robust"]',
        '~ notify.email.to: ["ml-team@example.com"] → ["ml-team@example.com", "lead@example.com"]',
    ]
    assert "3 change(s) in 1 DAG(s)." in text

    _, markdown, _ = cli("plan", "--format", "markdown")
    rows = [line for line in markdown.splitlines() if line.startswith("| ~ |")]
    assert rows == [
        "| ~ | `training.split.test_size` | `0.3` | `0.2` |",
        '| ~ | `training.scalers` | `["minmax", "standard"]` | `["robust"]` |',
        '| ~ | `notify.email.to` | `["ml-team@example.com"]` | `["ml-team@example.com", "lead@example.com"]` |',
    ]


# --- what counts as a change ----------------------------------------------------------------------


def test_no_change_and_a_respelling_are_no_changes(repo):
    code, report = plan_json()
    assert code == 0 and report["changed"] is False and report["dags"] == []
    lab2 = repo / "pipelines" / LAB2
    data = yaml.safe_load(lab2.read_text())
    data["Airflow_Lab2"]["training"]["split"]["stratify"] = False  # the default, written out
    data["Airflow_Lab2"]["catchup"] = False
    lab2.write_text(yaml.safe_dump(dict(reversed(list(data.items()))), default_flow_style=True))  # no comments, flow style
    code, report = plan_json()
    assert code == 0 and report["changed"] is False and report["dags"] == []
    assert "No changes." in cli("plan")[1]


def test_tasks_and_edges(repo):
    lab2 = repo / "pipelines" / LAB2
    edit(
        lab2,
        "      dependencies: [load_model_task]\n    my_trigger_task:",
        "      dependencies: [load_model_task, audit]\n    audit:\n"
        f"      operator: {EMPTY}\n      dependencies: [load_data_task]\n    my_trigger_task:",
    )
    flask = repo / "pipelines" / FLASK
    edit(flask, "  tasks:\n", f"  tasks:\n    warm_up:\n      operator: {EMPTY}\n")
    _, report = plan_json()
    by_id = {d["dag_id"]: d for d in report["dags"]}
    assert by_id["Airflow_Lab2"]["tasks_added"] == ["audit"]
    assert by_id["Airflow_Lab2"]["edges_added"] == [["audit", "send_email"], ["load_data_task", "audit"]]
    assert by_id["Airflow_Lab2"]["changes"] == []
    assert by_id["Airflow_Lab2_Flask"]["tasks_added"] == ["warm_up"]

    commit_all(repo)
    edit(lab2, "      dependencies: [load_model_task, audit]", "      dependencies: [load_model_task]")
    _, report = plan_json()
    assert changes_of(report, "Airflow_Lab2") == []
    assert report["dags"][0]["edges_removed"] == [["audit", "send_email"]]


def test_dags_added_and_removed(repo):
    (repo / "pipelines" / FLASK).unlink()
    lab2 = repo / "pipelines" / LAB2
    edit(lab2, "  trigger:\n", "  trigger:\n    external: true\n")
    (repo / "pipelines" / "scoring.yaml").write_text(f"Scoring:\n  tasks:\n    score:\n      operator: {EMPTY}\n")
    code, report = plan_json()
    assert code == 1
    statuses = {d["dag_id"]: (d["status"], d.get("tasks")) for d in report["dags"]}
    assert statuses == {
        "Airflow_Lab2": ("changed", None),
        "Airflow_Lab2_Flask": ("removed", ["start_Flask_API"]),
        "Scoring": ("added", ["score"]),
    }
    assert changes_of(report, "Airflow_Lab2") == [("trigger.external", False, True)]


def test_shared_defaults_show_where_they_take_effect(repo):
    edit(repo / "pipelines" / "defaults.yaml", "retries: 1", "retries: 3")
    _, report = plan_json()
    # Airflow_Lab2 sets its own retries; the monitor DAG takes the shared value
    assert [d["dag_id"] for d in report["dags"]] == ["Airflow_Lab2_Flask"]
    assert changes_of(report, "Airflow_Lab2_Flask") == [("default_args.retries", 1, 3)]


def test_an_invalid_working_tree_is_reported_and_the_rest_still_compared(repo):
    edit(repo / "pipelines" / LAB2, "test_size: 0.3", "test_size: 3")
    edit(repo / "pipelines" / FLASK, "port: 5555", "port: 5556")
    code, report = plan_json()
    assert code == 1
    assert report["new"]["valid"] is False and report["base"]["valid"] is True
    assert [(e["file"], e["line"], e["field"]) for e in report["new"]["errors"]] == [
        ("pipelines/airflow_lab2.yaml", 25, "Airflow_Lab2.training.split.test_size")
    ]
    by_id = {d["dag_id"]: d for d in report["dags"]}
    assert by_id["Airflow_Lab2"]["status"] == "not compared"
    assert changes_of(report, "Airflow_Lab2_Flask") == [("monitor.port", 5555, 5556)]
    _, markdown, _ = cli("plan", "--format", "markdown")
    assert "The working tree's pipelines are invalid" in markdown and "`pipelines/airflow_lab2.yaml:25`" in markdown


def test_the_summary_counts_changes_and_invalid_files_apart(repo):
    # an invalid file alone is no change
    edit(repo / "pipelines" / LAB2, "test_size: 0.3", "test_size: 3")
    _, text, _ = cli("plan")
    assert text.splitlines()[-3] == "No changes; 1 invalid file(s) in the working tree, 1 DAG(s) not compared."
    _, markdown, _ = cli("plan", "--format", "markdown")
    assert "No changes; 1 invalid file(s) in the working tree, 1 DAG(s) not compared." in markdown
    # a change in a valid DAG is counted as one, the invalid file beside it apart
    edit(repo / "pipelines" / FLASK, "port: 5555", "port: 5556")
    _, text, _ = cli("plan")
    assert "1 change(s) in 1 DAG(s); 1 invalid file(s) in the working tree, 1 DAG(s) not compared." in text.splitlines()
    # the same file fixed: two changes, nothing invalid
    edit(repo / "pipelines" / LAB2, "test_size: 3", "test_size: 0.2")
    _, text, _ = cli("plan")
    assert "2 change(s) in 2 DAG(s)." in text.splitlines()


def test_an_invalid_base_is_named_by_revision(repo):
    edit(repo / "pipelines" / LAB2, "dag_id: Airflow_Lab2_Flask", "dag_id: Nowhere")
    commit_all(repo, "broken")
    edit(repo / "pipelines" / LAB2, "dag_id: Nowhere", "dag_id: Airflow_Lab2_Flask")
    code, report = plan_json()
    assert code == 1 and report["new"]["valid"] is True
    (error,) = report["base"]["errors"]
    assert error["file"] == "HEAD:pipelines/airflow_lab2.yaml" and error["line"] == 45
    assert "adclick-plan" not in json.dumps(report)  # the scratch copy never shows
    # a file that only fails a check across files still compares
    assert changes_of(report, "Airflow_Lab2") == [("trigger.dag_id", "Nowhere", "Airflow_Lab2_Flask")]


def test_any_revision_and_a_folder_not_yet_there(repo):
    first = git(repo, "rev-parse", "HEAD").strip()
    edit(repo / "pipelines" / LAB2, "test_size: 0.3", "test_size: 0.25")
    commit_all(repo)
    assert plan_json()[1]["changed"] is False
    _, report = plan_json("--base", "HEAD~1")
    assert report["base"]["commit"] == first
    assert changes_of(report, "Airflow_Lab2") == [("training.split.test_size", 0.3, 0.25)]
    # a pipelines folder that is new in this change: every DAG is added
    shutil.copytree(repo / "pipelines", repo / "team_b" / "pipelines")
    code, report = plan_json("--pipelines", "team_b/pipelines")
    assert code == 1 and {(d["dag_id"], d["status"]) for d in report["dags"]} == {
        ("Airflow_Lab2", "added"),
        ("Airflow_Lab2_Flask", "added"),
    }
    assert report["base"]["note"] == "team_b/pipelines/ holds no pipeline files at HEAD"
    assert "team_b/pipelines/ holds no pipeline files at HEAD" in cli("plan", "--pipelines", "team_b/pipelines")[1]
    assert (
        "Note: team_b/pipelines/ holds no pipeline files at HEAD."
        in cli("plan", "--pipelines", "team_b/pipelines", "--format", "markdown")[1]
    )


def test_a_folder_inside_the_repository_from_another_working_folder(repo, monkeypatch):
    edit(repo / "pipelines" / LAB2, "    model_dir: model\n", "    min_accuracy: 0.9\n    model_dir: model\n")
    monkeypatch.chdir(repo.parent)
    _, report = plan_json("--pipelines", str(repo / "pipelines"))
    assert changes_of(report, "Airflow_Lab2") == [("training.min_accuracy", None, 0.9)]


@pytest.mark.parametrize(
    "setup,args,words",
    [
        ("none", ["--base", "no-such-ref"], "unknown git revision 'no-such-ref'"),
        ("none", ["--base=--output=x"], "unknown git revision '--output=x'"),
        ("none", ["--pipelines", "nowhere"], "nowhere: pipelines folder not found"),
        ("no-git", [], "is not inside a git repository"),
    ],
)
def test_usage_errors_exit_2(repo, setup, args, words):
    if setup == "no-git":
        shutil.rmtree(repo / ".git")
    code, out, err = cli("plan", *args)
    assert code == 2 and out == ""
    assert words in err


# --- generated: every knob, every graph -----------------------------------------------------------

KNOBS = {
    "training.split.test_size": (("training", "split", "test_size"), st.integers(5, 95).map(lambda n: n / 100)),
    "training.split.random_state": (("training", "split", "random_state"), st.integers(0, 1000)),
    "training.split.stratify": (("training", "split", "stratify"), st.booleans()),
    "training.scalers": (("training", "scalers"), st.lists(st.sampled_from(SCALERS), unique=True, max_size=4)),
    "training.estimator.params.max_iter": (("training", "estimator", "params", "max_iter"), st.integers(100, 5000)),
    "training.min_accuracy": (("training", "min_accuracy"), st.integers(0, 100).map(lambda n: n / 100)),
    "notify.email.to": (
        ("notify", "email", "to"),
        st.lists(st.from_regex(r"[a-z]{1,6}@example\.(org|com)", fullmatch=True), min_size=1, max_size=3, unique=True),
    ),
    # plain text or the documented placeholders: validate refuses any other template syntax
    "trigger.conf.upstream_run_id": (
        ("trigger", "conf", "upstream_run_id"),
        st.one_of(st.text("abc _-", min_size=1, max_size=12), st.sampled_from(["{{ run_id }}", "{{ ds }}", "run of {{ dag.dag_id }}"])),
    ),
    "schedule": (("schedule",), st.sampled_from(["@daily", "@hourly", "0 3 * * *", None])),
    "default_args.retries": (("default_args", "retries"), st.integers(0, 10)),
    "tasks.my_trigger_task.trigger_rule": (("tasks", "my_trigger_task", "trigger_rule"), st.sampled_from(TRIGGER_RULES)),
}


def _side(root: Path, data: dict) -> planning.Side:
    folder = root / uuid.uuid4().hex
    shutil.copytree(PROJECT / "pipelines", folder)
    (folder / LAB2).write_text(yaml.safe_dump(data, sort_keys=False))
    return planning.read_working_tree(folder)


@given(edits=st.dictionaries(st.sampled_from(sorted(KNOBS)), st.data(), max_size=len(KNOBS)))
@GENERATED
def test_every_knob_change_and_nothing_else(tmp_path, edits):
    base = yaml.safe_load((PROJECT / "pipelines" / LAB2).read_text())
    new = json.loads(json.dumps(base, default=str))
    base = json.loads(json.dumps(base, default=str))
    expected = []
    for name in sorted(edits, key=list(KNOBS).index):
        path, strategy = KNOBS[name]
        value = edits[name].draw(strategy)
        node = new["Airflow_Lab2"]
        for part in path[:-1]:
            node = node.setdefault(part, {})
        old = node.get(path[-1])
        if old != value:
            expected.append((name, old, value))
        node[path[-1]] = value
    report = json.loads(planning.render(planning.compare("pipelines", _side(tmp_path, base), _side(tmp_path, new)), "json"))
    got = changes_of(report, "Airflow_Lab2") if report["dags"] else []
    assert sorted(got, key=str) == sorted(expected, key=str)


@st.composite
def graphs(draw) -> dict[str, list[str]]:
    """An acyclic task graph: task -> upstream tasks, edges only from earlier to later tasks."""
    names = draw(st.lists(st.sampled_from([f"t{i}" for i in range(8)]), min_size=1, max_size=8, unique=True))
    return {n: sorted(draw(st.sets(st.sampled_from(names[:i])) if i else st.just(set()))) for i, n in enumerate(names)}


def _graph_side(root: Path, graph: dict[str, list[str]]) -> planning.Side:
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    tasks = {t: {"operator": EMPTY, "dependencies": ups} for t, ups in graph.items()}
    (folder / "g.yaml").write_text(yaml.safe_dump({"G": {"tasks": tasks}}))
    side = planning.read_working_tree(folder)
    assert not side.issues, side.issues
    return side


@given(old=graphs(), new=graphs())
@GENERATED
def test_tasks_and_edges_are_the_set_differences(tmp_path, old, new):
    plan = planning.compare("p", _graph_side(tmp_path, old), _graph_side(tmp_path, new))

    def edges(g: dict[str, list[str]]) -> set[tuple[str, str]]:
        return {(u, t) for t, ups in g.items() for u in ups}

    if old == new:
        assert plan.dags == []
        return
    (dag,) = plan.dags
    assert set(dag.tasks_added) == set(new) - set(old) and set(dag.tasks_removed) == set(old) - set(new)
    assert set(dag.edges_added) == edges(new) - edges(old) and set(dag.edges_removed) == edges(old) - edges(new)
    assert dag.changes == []


@given(subject=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30))
@GENERATED
def test_markdown_rows_keep_their_cells_whatever_the_value(tmp_path, subject):
    base = json.loads(json.dumps(yaml.safe_load((PROJECT / "pipelines" / LAB2).read_text()), default=str))
    new = json.loads(json.dumps(base))
    new["Airflow_Lab2"]["notify"]["email"]["subject"] = subject
    plan = planning.compare("pipelines", _side(tmp_path, base), _side(tmp_path, new))
    rows = [line for line in planning.as_markdown(plan).splitlines() if line.startswith("| ~ |")]
    if subject == base["Airflow_Lab2"]["notify"]["email"]["subject"]:
        assert rows == []
        return
    (row,) = rows
    # GitHub splits a table row on pipes that are not escaped, even inside code spans
    assert len(re.split(r"(?<!\\)\|", row)) == 6, row


def test_plan_answers_from_the_installed_command(repo):
    """The console script, as CI calls it (exit code and JSON on stdout)."""
    import subprocess
    import sys

    edit(repo / "pipelines" / LAB2, "max_iter: 1000", "max_iter: 500")
    script = Path(sys.executable).parent / "adclick-ops"
    result = subprocess.run(
        [str(script), "plan", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=repo,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
        timeout=120,
    )
    assert result.returncode == 1, result.stderr  # 1: a plan with changes
    assert changes_of(json.loads(result.stdout), "Airflow_Lab2") == [("training.estimator.params.max_iter", 1000, 500)]
