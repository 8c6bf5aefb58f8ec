"""One bad file (or DAG) hurts only itself, and validate accepts nothing that Airflow refuses at parse time.

- Airflow refusing a DAG while it is built or checked (as the DagBag checks it after the import):
  the refusal becomes an import error of that DAG's pipeline file, never of the DAG file, and
  every other DAG still loads. Injected into the factory's output, since validation catches
  every such value first.
- A file that does not parse still declares the DAG ids of its top-level keys, so the other
  file's trigger check does not fail with it.
- Generated DAG settings (schedules, tags, start dates, ids, @continuous): whatever validate
  accepts, Airflow's DAG constructor and DagBag checks accept too.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adclick_ops import render as render_module
from adclick_ops.config import load_catalog
from adclick_ops.config.schedules import cron_problem, schedule_problem

from tests.support.hardening import PROJECT, count, dump

LAB2, FLASK = "airflow_lab2.yaml", "airflow_lab2_flask.yaml"
FILES = {"Airflow_Lab2": LAB2, "Airflow_Lab2_Flask": FLASK}


def copy_project(dest: Path) -> Path:
    for part in ("dags", "pipelines"):
        shutil.copytree(PROJECT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _tags(cfg: dict) -> None:
    cfg["tags"] = ["t" * 101]


def _cron(cfg: dict) -> None:
    cfg["schedule"] = "61 * * * *"


def _continuous(cfg: dict) -> None:
    cfg["schedule"], cfg["max_active_runs"] = "@continuous", 3


def _task_kwarg(cfg: dict) -> None:
    next(iter(cfg["tasks"].values()))["no_such_argument"] = 1


def _dependency(cfg: dict) -> None:
    next(iter(cfg["tasks"].values()))["dependencies"] = ["missing_task"]


BREAKS = {"tag too long": _tags, "bad cron": _cron, "@continuous with 3 runs": _continuous, "unknown operator argument": _task_kwarg}
BREAKS["dependency on a missing task"] = _dependency


@pytest.fixture
def dagbag_of(monkeypatch, tmp_path):
    for var in ("ADCLICK_OPS_PIPELINES", "ADCLICK_OPS_HOME"):
        monkeypatch.delenv(var, raising=False)

    def parse(broken: str, how) -> Any:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.sdk.definitions._internal.contextmanager import DagContext

        project = copy_project(tmp_path / "project")
        real = render_module.dag_config

        def corrupted(dag_id: str, *args: Any, **kwargs: Any) -> dict:
            cfg = real(dag_id, *args, **kwargs)
            if dag_id == broken:
                how(cfg)
            return cfg

        monkeypatch.setattr(render_module, "dag_config", corrupted)
        bag = DagBag(str(project / "dags"), bundle_path=project)
        assert not DagContext.autoregistered_dags
        return bag

    return parse


@pytest.mark.parametrize("broken", list(FILES))
@pytest.mark.parametrize("how", list(BREAKS))
def test_a_dag_airflow_refuses_is_an_error_of_its_own_pipeline_file(dagbag_of, broken, how):
    count("isolation: DAG refused by Airflow")
    bag = dagbag_of(broken, BREAKS[how])
    other = next(d for d in FILES if d != broken)
    assert set(bag.dags) == {other}
    assert set(bag.import_errors) == {f"pipelines/{FILES[broken]}"}, bag.import_errors
    message = bag.import_errors[f"pipelines/{FILES[broken]}"]
    assert f"pipelines/{FILES[broken]}:" in message and f": {broken}: Airflow refused this DAG" in message


# --- a file that does not parse ------------------------------------------------------------------

GARBAGE = ["  : :\n", "\t- x\n", "[\n", "key: [1, 2\n", '"unterminated\n', "  - - - : :\n", "{{\n", "x: y: z\n", "  bad indent: 1\n x: 1\n"]


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.integers(4, 30), garbage=st.sampled_from(GARBAGE))
def test_a_file_that_does_not_parse_still_declares_its_dag_ids(tmp_path_factory, line, garbage):
    folder = tmp_path_factory.mktemp("pipelines")
    for f in (PROJECT / "pipelines").glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    lines = (folder / FLASK).read_text().splitlines(keepends=True)
    lines.insert(min(line, len(lines)), garbage)
    (folder / FLASK).write_text("".join(lines))
    catalog = load_catalog(folder)
    assume(str(folder / FLASK) in {str(Path(p).resolve()) for p in catalog.errors} or any(FLASK in p for p in catalog.errors))
    errors = {Path(p).name for p in catalog.errors}
    if "Airflow_Lab2_Flask" in catalog.dags:  # the garbage happened to be valid YAML and valid settings
        return
    count("isolation: unparsable file keeps its DAG ids")
    assert errors == {FLASK}, [str(i) for e in catalog.errors.values() for i in e.issues]
    assert "Airflow_Lab2" in catalog.dags


# --- validate accepts => Airflow accepts ---------------------------------------------------------

BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def field_item(low: int, high: int) -> st.SearchStrategy[str]:
    """Mostly what a cron field takes, sometimes just out of range or in a spelling only croniter knows."""
    inside = st.integers(low, high)
    valid = st.one_of(
        st.just("*"),
        inside.map(str),
        st.tuples(inside, inside).map(lambda t: f"{min(t)}-{max(t)}"),
        st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(1, high - low + 1)).map(lambda t: f"{t[0]}/{t[1]}"),
    )
    odd = st.one_of(
        st.integers(max(low - 1, 0), high + 2).map(str),
        st.tuples(inside, inside).map(lambda t: f"{max(t)}-{min(t)}"),
        st.sampled_from(["jan", "FEB", "mon", "sun-sat", "mon-fri", "L", "?", "1W", "5#2", "H", "**", "-1", "*/0", "*/99"]),
    )
    return st.one_of(valid, valid, valid, odd)


cron = st.one_of(
    st.tuples(*(st.lists(field_item(lo, hi), min_size=1, max_size=3).map(",".join) for lo, hi in BOUNDS)).map(" ".join),
    st.tuples(*(field_item(lo, hi) for lo, hi in BOUNDS)).map(" ".join),
    st.lists(field_item(0, 59), min_size=3, max_size=7).map(" ".join),
)
schedules = st.one_of(
    cron,
    st.sampled_from(["@daily", "@hourly", "@once", "@continuous", "@annually", "@quarterly", None]),
    st.sampled_from(["@midnight", "@reboot", "@every 5m", "daily", "0 0 * * * *"]),
)
zones = st.sampled_from(["Z", "+00:00", "+05:30", "-11:00", "+14:00", ""])
start_dates = st.one_of(
    st.dates(dt.date(1950, 1, 1), dt.date(2100, 12, 31)).map(lambda d: d.isoformat()),
    st.tuples(st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2100, 1, 1)), zones).map(
        lambda t: t[0].replace(microsecond=0).isoformat() + t[1]
    ),
    st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(lambda d: d.isoformat()),
    st.tuples(st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30)), zones).map(
        lambda t: t[0].replace(microsecond=0).isoformat() + t[1]
    ),
)
id_chars = string.ascii_letters + string.digits + "_.-"
ids = st.one_of(*[st.text(id_chars, min_size=1, max_size=40)] * 3, st.text(id_chars, min_size=240, max_size=260), st.text(max_size=8))
tag = st.one_of(*[st.text(string.ascii_letters + string.digits + " -_:", min_size=1, max_size=30)] * 3, st.text(min_size=0, max_size=110))
tags = st.lists(tag, max_size=3, unique=True)


def flask_file(folder: Path, dag_id: str, settings_: dict[str, Any], task_id: str = "start_Flask_API") -> None:
    doc = yaml.safe_load((PROJECT / "pipelines" / FLASK).read_text())
    body = doc["Airflow_Lab2_Flask"]
    body.update(settings_)
    body["tasks"] = {task_id: body["tasks"]["start_Flask_API"]}
    (folder / FLASK).write_text(dump({dag_id: body}))


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    schedule=st.one_of(schedules, st.sampled_from(["@daily", "*/5 * * * *", "0 6 * jan-mar mon-fri", None])),
    start=start_dates,
    runs=st.integers(1, 4),
    tag_list=tags,
    dag_id=ids,
    task_id=ids,
)
def test_what_validate_accepts_airflow_builds(tmp_path_factory, monkeypatch, schedule, start, runs, tag_list, dag_id, task_id):
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    folder = tmp_path_factory.mktemp("pipelines")
    flask_file(folder, dag_id, {"schedule": schedule, "start_date": start, "max_active_runs": runs, "tags": tag_list}, task_id)
    catalog = load_catalog(folder)
    count("airflow agreement: generated DAG settings")
    if catalog.errors:
        for error in catalog.errors.values():
            for issue in error.issues:
                assert issue.path.endswith(FLASK) and issue.line and issue.field, issue
        return
    count("airflow agreement: accepted and built")
    rendered: dict = {}
    assert render_module.render(rendered, folder) == [dag_id]
    dag = rendered[dag_id]
    dag.validate()
    dag.check_cycle()
    assert not DagContext.autoregistered_dags or all(d.dag_id == dag_id for d, _ in DagContext.autoregistered_dags)
    DagContext.autoregistered_dags.clear()


@settings(max_examples=600, deadline=None, database=None)
@given(expression=cron)
def test_every_cron_expression_validate_accepts_croniter_and_airflow_accept(expression):
    import pendulum
    from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable
    from airflow.timetables.trigger import CronTriggerTimetable as CoreCronTriggerTimetable
    from croniter import croniter

    count("airflow agreement: cron expressions")
    problem = cron_problem(expression)
    if problem is not None:  # refused: validate says so, in one line
        assert schedule_problem(expression) == f"schedule {expression!r} is not a valid cron expression: {problem}"
        assert "\n" not in problem
        return
    count("airflow agreement: cron accepted")
    assert schedule_problem(expression) is None
    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    fires = croniter(expression, base).get_next(dt.datetime)
    assert base < fires <= base + dt.timedelta(days=8 * 366)  # it runs: even a 29 February comes within 8 years
    CronTriggerTimetable(expression, timezone="UTC").validate()
    # the scheduler's timetable fires when croniter says
    assert CoreCronTriggerTimetable(expression, timezone="UTC")._get_next(pendulum.instance(base)) == fires


def test_the_shipped_files_still_load_under_a_dagbag_with_one_dag_refused(dagbag_of):
    """A DAG refused while the DAG file is parsed leaves nothing behind in Airflow's DAG context."""
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    dagbag_of("Airflow_Lab2", _task_kwarg)
    assert not DagContext.autoregistered_dags
    assert os.environ.get("ADCLICK_OPS_PIPELINES") is None
