"""adclick_ops.preload: task processes forked from a process that preloaded adclick-ops start warm, and
still run the code as it is on disk when a file changed after the preload.

Every test that preloads does it in a process of its own, and forks from it as Airflow does."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from adclick_ops import preload
from adclick_ops.embedded.stack import Stack

from tests.support import SEED_TASKS, copy_pipelines, edit_yaml, free_port, run_airflow

ROOT = Path(__file__).resolve().parents[1]

# Preload warmpkg.a (which imports warmpkg.b), run the edit, fork, and in the child do what the DAG file does:
# refresh, then import. The child reports what it found.
_FORKED = """
import importlib, json, logging, os, sys
from adclick_ops import preload
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
preload.preload(("warmpkg.a",), tracked=("warmpkg",))
first = sys.modules["warmpkg.a"]
exec(sys.argv[1])
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    out = {}
    try:
        out["stale"] = preload.refresh()
        out["kept_untracked"] = "adclick_ops.preload" in sys.modules
        try:
            module = importlib.import_module("warmpkg.a")
            out.update(value=module.VALUE, same=module is first)
        except ImportError as exc:
            out["error"] = type(exc).__name__
        out["again"] = preload.refresh()
    finally:
        os.write(w, json.dumps(out).encode())
        os._exit(0)
os.close(w)
os.waitpid(pid, 0)
print(os.read(r, 1 << 16).decode())
"""


def _package(tmp_path: Path) -> Path:
    pkg = tmp_path / "warmpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from warmpkg import b\n\nVALUE = b.VALUE\n")
    (pkg / "b.py").write_text('VALUE = "old"\n')
    return pkg


def _python(code: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], env=base, cwd=cwd, capture_output=True, text=True, timeout=300)


def _forked(tmp_path: Path, edit: str) -> dict:
    _package(tmp_path)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = _python(_FORKED, textwrap.dedent(edit), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    said = "adclick_ops.preload: warmpkg.b changed since the scheduler or worker started; importing warmpkg afresh"
    assert (said in result.stderr) is bool(found["stale"]), result.stderr
    return found


B = "warmpkg/b.py"


@pytest.mark.parametrize(
    ("edit", "value"),
    [
        (f"open({B!r}, 'w').write('VALUE = \"new, longer\"\\n')", "new, longer"),
        # the same size, a later time: an edit that keeps the length is seen too
        (
            f"st = os.stat({B!r}); open({B!r}, 'w').write('VALUE = \"neW\"\\n'); os.utime({B!r}, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))",
            "neW",
        ),
        # replaced by another file of the same content (a reinstall): imported again, same result
        (f"os.replace({B!r}, 'b.tmp'); open({B!r}, 'w').write(open('b.tmp').read())", "old"),
    ],
    ids=["edited", "same-size", "replaced"],
)
def test_a_task_process_imports_a_tracked_package_afresh_when_one_of_its_files_changed(tmp_path, edit, value):
    found = _forked(tmp_path, edit)
    assert found["stale"] == ["warmpkg.b"]
    assert found["value"] == value and found["same"] is False
    # only the tracked packages are dropped, and the check is made once per process
    assert found["kept_untracked"] is True and found["again"] == []


def test_a_task_process_keeps_the_preloaded_modules_when_nothing_changed(tmp_path):
    found = _forked(tmp_path, "")
    assert found == {"stale": [], "kept_untracked": True, "value": "old", "same": True, "again": []}


def test_a_removed_file_is_not_run_from_memory(tmp_path):
    found = _forked(tmp_path, f"os.remove({B!r})")
    assert found["stale"] == ["warmpkg.b"] and found["error"] == "ImportError"


def test_a_failed_preload_leaves_no_half_imported_package_and_nothing_to_refresh(tmp_path):
    pkg = _package(tmp_path)
    (pkg / "broken.py").write_text("from warmpkg import b\n\nraise RuntimeError('boom')\n")
    code = """
import json, sys
from adclick_ops import preload
try:
    preload.preload(("warmpkg.broken",), tracked=("warmpkg",))
except RuntimeError as exc:
    error = str(exc)
print(json.dumps({"error": error, "left": sorted(m for m in sys.modules if m.startswith("warmpkg")), "refresh": preload.refresh()}))
"""
    result = _python(code, env={"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}, cwd=tmp_path)
    assert json.loads(result.stdout) == {"error": "boom", "left": [], "refresh": []}, result.stderr


def test_refresh_without_a_preload_changes_nothing():
    before = dict(sys.modules)
    assert preload.refresh() == []
    assert all(sys.modules.get(name) is module for name, module in before.items())


@pytest.mark.parametrize(
    ("argv", "executor", "wanted"),
    [
        (["airflow", "scheduler"], "LocalExecutor", True),
        (["airflow", "scheduler", "--skip-serve-logs"], "LocalExecutor", True),
        (["airflow", "scheduler"], "LocalExecutor,CeleryExecutor", True),
        (["airflow", "scheduler"], "CeleryExecutor", False),  # its tasks run in the Celery workers
        (["airflow", "celery", "worker"], "CeleryExecutor", True),
        (["airflow", "celery", "flower"], "CeleryExecutor", False),
        (["airflow", "dag-processor"], "LocalExecutor", False),
        (["airflow", "api-server"], "LocalExecutor", False),
        (["airflow", "triggerer"], "LocalExecutor", False),
        (["airflow", "dags", "test", "Airflow_Lab2"], "LocalExecutor", False),
        (["airflow"], "LocalExecutor", False),
    ],
)
def test_only_the_process_that_forks_task_processes_preloads(monkeypatch, argv, executor, wanted):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    assert preload._wanted(argv) is wanted


# Start Python as `airflow <argv>` would, with config/ on the path: Airflow imports config/airflow_local_settings.py.
_AS_AIRFLOW = """
import json, sys
sys.argv = json.loads(sys.argv[1])
import airflow
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("adclick_ops", "dagfactory")))))
"""


def _as_airflow(tmp_path: Path, argv: list[str], **env: str) -> tuple[list[str], str]:
    base = {"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "PYTHONPATH": str(ROOT / "config")}
    result = _python(_AS_AIRFLOW, json.dumps(argv), env={**base, **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_airflow_local_settings_preloads_the_scheduler_and_says_so(tmp_path):
    modules, err = _as_airflow(tmp_path, ["airflow", "scheduler"])
    assert {"adclick_ops.render", "adclick_ops.tasks", "adclick_ops.config.models", "dagfactory.dagbuilder"} <= set(modules)
    assert "modules preloaded for the task processes (ADCLICK_OPS_PRELOAD=false turns this off)" in err


@pytest.mark.parametrize(("argv", "env"), [(["airflow", "api-server"], {}), (["airflow", "scheduler"], {"ADCLICK_OPS_PRELOAD": "false"})])
def test_airflow_local_settings_leaves_other_processes_cold(tmp_path, argv, env):
    modules, err = _as_airflow(tmp_path, argv, **env)
    assert "adclick_ops.render" not in modules and "dagfactory" not in modules
    assert "preloaded" not in err


def test_an_unknown_preload_setting_is_named_and_the_default_holds(tmp_path):
    modules, err = _as_airflow(tmp_path, ["airflow", "scheduler"], ADCLICK_OPS_PRELOAD="maybe")
    assert "adclick-ops: ADCLICK_OPS_PRELOAD='maybe' is not true or false; preloading as by default" in err
    assert "adclick_ops.render" in modules


def test_a_preload_that_fails_costs_only_the_speed(tmp_path):
    code = """
import json, sys
from adclick_ops import preload
preload.MODULES = ("adclick_ops.render", "adclick_ops.no_such_module")
print(json.dumps({"added": preload.preload_for_command(["airflow", "celery", "worker"]),
                  "left": sorted(m for m in sys.modules if m.startswith("adclick_ops.") and m != "adclick_ops.preload")}))
"""
    result = _python(code, env={"AIRFLOW_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {"added": [], "left": []}
    assert (
        "adclick-ops: modules not preloaded for the task processes (ModuleNotFoundError: No module named 'adclick_ops.no_such_module')"
        in result.stderr
    )


# In a preloaded scheduler, fork one process per task as Airflow does, and parse the DAG file there for that
# task: the modules each parse still has to import.
_PARSES = """
import json, os, runpy, sys
sys.argv = ["airflow", "scheduler"]
import airflow
dag_file = sys.stdin.readline().strip()
tasks = json.loads(sys.stdin.readline())
found = {}
for dag_id, task_id in tasks:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.environ.update(_AIRFLOW_PARSING_CONTEXT_DAG_ID=dag_id, _AIRFLOW_PARSING_CONTEXT_TASK_ID=task_id)
        before = set(sys.modules)
        names = runpy.run_path(dag_file, run_name="unusual_prefix_adclick_dags")
        built = [k for k, v in names.items() if type(v).__name__ == "DAG"]
        new = sorted(set(sys.modules) - before)
        os.write(w, json.dumps({"built": built, "new": new}).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 1 << 16):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    found[f"{dag_id}.{task_id}"] = json.loads(b"".join(chunks))
print(json.dumps(found))
"""
SHIPPED_TASKS = [("Airflow_Lab2", t) for t in SEED_TASKS] + [("Airflow_Lab2_Flask", "start_Flask_API")]


def test_the_preload_covers_what_each_task_process_parses(tmp_path):
    pipelines = copy_pipelines(tmp_path)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
        "ADCLICK_OPS_PIPELINES": str(pipelines),
        "ADCLICK_OPS_HOME": str(pipelines.parent),
        "PYTHONPATH": str(ROOT / "config"),
    }
    stdin = f"{ROOT / 'dags' / 'adclick_dags.py'}\n{json.dumps(SHIPPED_TASKS)}\n"
    result = subprocess.run([sys.executable, "-c", _PARSES], input=stdin, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(found) == {f"{d}.{t}" for d, t in SHIPPED_TASKS}
    for task, parse in found.items():
        assert parse["built"], f"{task}: no DAG built"
        # nothing of the package, of dag-factory, of the libraries they load or of the providers whose operators the
        # pipelines name (preload.MODULES lists them) is imported again in the task process
        late = [
            m
            for m in parse["new"]
            if m.partition(".")[0] in ("adclick_ops", "dagfactory", "pydantic", "yaml", "jinja2") or m.startswith("airflow.providers.")
        ]
        assert late == [], f"{task}: {late}"


def _unpaused(db: Path) -> bool:
    with sqlite3.connect(db) as con:
        return con.execute("select is_paused from dag where dag_id = 'Airflow_Lab2'").fetchone() == (0,)


def _wait_for_run(db: Path, run_id: str, stack: Stack, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        assert not stack.dead(), stack.log_tail("scheduler")
        with sqlite3.connect(db) as con:
            row = con.execute("select state from dag_run where dag_id = 'Airflow_Lab2' and run_id = ?", (run_id,)).fetchone()
        state = row[0] if row else None
        if state in ("success", "failed"):
            return state
        time.sleep(1)
    with sqlite3.connect(db) as con:
        dags = con.execute("select dag_id, is_paused from dag").fetchall()
        runs = con.execute("select run_id, state, run_after, queued_at from dag_run").fetchall()
    raise AssertionError(f"run {run_id} still {state} after {timeout} s ({dags}, {runs}):\n{stack.log_tail('scheduler')}")


def test_a_running_scheduler_runs_each_task_on_the_code_as_edited_after_it_started(airflow_home, pipelines, smtp_server, tmp_path):
    """Real Airflow (api-server, scheduler, dag-processor; LocalExecutor): the package is a copy put first on the
    path, so the scheduler preloads it; a file of it is edited between two runs, and the second runs the edit."""
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"].update(schedule=None))  # triggered runs only
    code = tmp_path / "code"
    shutil.copytree(ROOT / "adclick_ops", code / "adclick_ops", ignore=shutil.ignore_patterns("__pycache__"))
    api, logs = free_port(), free_port()
    env = airflow_home(
        **smtp_server.connection_env(),
        PYTHONPATH=os.pathsep.join([str(code), str(ROOT / "config")]),
        AIRFLOW__API__PORT=str(api),
        AIRFLOW__API__BASE_URL=f"http://localhost:{api}",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api}/execution/",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(logs),
    )
    home = Path(env["AIRFLOW_HOME"])
    stack = Stack(env, home)
    try:
        stack.start_airflow(("api-server", "scheduler", "dag-processor"))
        deadline = time.monotonic() + 240
        while not _unpaused(home / "airflow.db"):  # once the DAG processor has stored the DAG, it can be unpaused
            assert not stack.dead() and time.monotonic() < deadline, stack.log_tail("dag-processor")
            run_airflow(["dags", "unpause", "Airflow_Lab2"], env)
            time.sleep(1)
        assert run_airflow(["dags", "trigger", "Airflow_Lab2", "--run-id", "before-edit"], env).returncode == 0
        assert _wait_for_run(home / "airflow.db", "before-edit", stack) == "success"
        with (code / "adclick_ops" / "tasks.py").open("a") as fh:
            fh.write('\nlog.warning("adclick_ops.tasks as edited while the scheduler runs")\n')
        assert run_airflow(["dags", "trigger", "Airflow_Lab2", "--run-id", "after-edit"], env).returncode == 0
        assert _wait_for_run(home / "airflow.db", "after-edit", stack) == "success"
    finally:
        stack.stop()
    assert "modules preloaded for the task processes" in (home / "scheduler.log").read_text()

    def task_log(run_id: str, task_id: str) -> str:
        return (home / "logs" / "dag_id=Airflow_Lab2" / f"run_id={run_id}" / f"task_id={task_id}" / "attempt=1.log").read_text()

    edited, refreshed = (
        "adclick_ops.tasks as edited while the scheduler runs",
        "adclick_ops.tasks changed since the scheduler or worker started",
    )
    for task in SEED_TASKS:
        before, after = task_log("before-edit", task), task_log("after-edit", task)
        assert edited not in before and refreshed not in before, task
        assert edited in after and refreshed in after, (task, after[-3000:])


# What freeze_heap leaves in a process of its own: the frozen count after each step, and whether garbage made
# after the freeze is still collected.
_FREEZE = """
import gc, json, sys
from adclick_ops import preload
counts = [gc.get_freeze_count()]
keep = [[i] for i in range(1000)]
preload.freeze_heap("parsed")
counts.append(gc.get_freeze_count())
more = [[i] for i in range(1000)]
preload.freeze_heap("parsed")
counts.append(gc.get_freeze_count())
preload.freeze_heap("task")
counts.append(gc.get_freeze_count())
class Cycle:
    pass
c = Cycle(); c.me = c; del c
print(json.dumps({"counts": counts, "collected": gc.collect()}))
"""


def test_freeze_heap_freezes_once_for_each_moment_and_later_garbage_is_still_collected():
    out = subprocess.run([sys.executable, "-c", _FREEZE], capture_output=True, text=True, check=True, cwd=ROOT)
    report = json.loads(out.stdout)
    before, parsed, again, task = report["counts"]
    assert before == 0 and parsed > 1000  # the lists alive at that moment, and all else
    assert again == parsed  # the same moment a second time: the 1,000 new lists are not frozen
    assert task > again + 1000  # another moment freezes what was made since
    assert report["collected"] >= 1  # a cycle made after the freezes is still collected


_PARSED_AND_TASK = """
import gc, json, sys
from airflow.dag_processing.dagbag import DagBag
def collectable(obj):  # frozen objects are left out of what the collector walks
    return any(o is obj for o in gc.get_objects())
bag = DagBag(sys.argv[1])
assert not bag.import_errors, bag.import_errors
report = {"frozen_after_parse": gc.get_freeze_count()}
from adclick_ops import tasks
made = [[i] for i in range(100)]
report["made_before_task"] = collectable(made)
try:
    tasks.load_data({}, "run")  # invalid settings: the task fails, after the freeze
except Exception:
    pass
report["made_after_task"] = collectable(made)
print(json.dumps(report))
"""


def test_parsing_the_dag_file_and_starting_a_task_each_freeze_the_heap(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False"}
    out = subprocess.run(
        [sys.executable, "-c", _PARSED_AND_TASK, str(ROOT / "dags")], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    # the DAG file froze what its parse left alive, then a task's start froze what was made since
    assert report["frozen_after_parse"] > 100_000
    assert report["made_before_task"] is True and report["made_after_task"] is False
