"""Pipeline text never runs as a template: generated strings, rendered by Airflow's own Jinja environment.

Two halves, each on generated text:
- the mechanism (`config.templating`): whatever a string holds, the template handed to Airflow
  renders exactly that string (placeholders filled in), touches nothing of the context but the
  placeholders, and never names a template file;
- the gate: validate refuses template syntax other than the placeholders, in every text field,
  with file, line and field; and the JSON Schema's patterns say the same as the validator.
The whole path is tried too: pipelines rendered into DAGs, every templated field of every task
(and the failure notifier) rendered with a context whose secrets are trip wires.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import regress
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adclick_ops.cli import main
from adclick_ops.config import templating
from adclick_ops.config.templating import PLACEHOLDERS, as_template, first_delimiter, literal, template_problem

from tests.support.hardening import PROJECT, count, dump

EXAMPLES = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LAB2 = "airflow_lab2.yaml"

# Text with plenty of what template engines read: delimiters, their halves, newlines, look-alikes.
PIECES = [
    "{",
    "}",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{{-",
    "-}}",
    "%",
    "#",
    "'",
    '"',
    "\\",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "conn.smtp_default.password",
    "var.value.secret",
    "macros.uuid.os.system('touch /tmp/pwned')",
    "raw",
    "endraw",
    ".html",
    ".txt",
    "\uff5b",  # fullwidth {
    "\ufe5b",  # small {
    "\uff05",  # fullwidth %
    "é",
    "x",
]
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=12).map("".join)
PLACEHOLDER_TEXT = {name: f"{{{{ {name} }}}}" for name in PLACEHOLDERS}


class TripWire:
    """A context entry no pipeline text may reach: touching it fails the test."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"template reached {self._name}.{attr}")

    def __str__(self) -> str:
        raise AssertionError(f"template rendered {self._name}")


def airflow_env():
    from airflow.sdk import DAG

    return DAG("t", schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)).get_template_env()


def context(dag: Any = None, task: Any = None, with_dates: bool = True) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "dag": dag or type("D", (), {"dag_id": "Airflow_Lab2"})(),
        "task": task or type("T", (), {"task_id": "send_email"})(),
        "run_id": "manual__2024-01-01T00:00:00+00:00",
        "conn": TripWire("conn"),
        "var": TripWire("var"),
        "macros": TripWire("macros"),
        "params": TripWire("params"),
    }
    if with_dates:
        ctx.update(ds="2024-01-01", ds_nodash="20240101", ts="2024-01-01T00:00:00+00:00", logical_date="2024-01-01 00:00:00+00:00")
    return ctx


def expected(text: str, ctx: dict[str, Any]) -> str:
    """The text with its placeholders filled in, as the reader means them (read left to right, like as_template)."""

    def value(name: str) -> str:
        obj: Any = ctx
        for part in name.split("."):
            obj = obj.get(part, "") if isinstance(obj, dict) else getattr(obj, part)
        return str(obj)

    return templating.PLACEHOLDER_RE.sub(lambda m: value(m.group(1)), text)


@pytest.fixture(scope="module")
def env():
    return airflow_env()


@EXAMPLES
@given(text=texts)
def test_a_literal_renders_exactly_its_text(env, text):
    count("template: literal renders its text")
    assert env.from_string(literal(text)).render(context()) == text


@EXAMPLES
@given(parts=st.lists(st.one_of(texts, st.sampled_from(list(PLACEHOLDER_TEXT.values()))), max_size=8), with_dates=st.booleans())
def test_a_template_renders_its_text_with_only_the_placeholders_filled_in(env, parts, with_dates):
    count("template: placeholders filled, the rest literal")
    text = "".join(parts)
    ctx = context(with_dates=with_dates)
    assert env.from_string(as_template(text)).render(ctx) == expected(text, ctx)


@EXAMPLES
@given(text=texts, ext=st.sampled_from([(".html",), (".html", ".txt"), ()]))
def test_a_text_that_ends_like_a_template_file_stays_text(text, ext):
    """Airflow reads a templated field ending with the operator's template_ext as a file name."""
    count("template: never a template file name")
    for source in (literal(text, ext), as_template(text, ext)):
        assert not ext or not source.endswith(ext)


@EXAMPLES
@given(text=texts)
def test_validation_and_the_schema_patterns_agree(text):
    count("template: validate and schema agree")
    plain_ok = template_problem(text, placeholders=False) is None
    assert (first_delimiter(text, False) is None) == (re.search(templating.NO_TEMPLATE_PATTERN, text) is None)
    assert (first_delimiter(text, True) is None) == (not any(re.search(p, text) for p in templating.TEMPLATE_REFUSALS))
    # the same in the ECMA-262 engine of check-jsonschema
    assert (first_delimiter(text, True) is None) == all(regress.Regex(p).find(text) is None for p in templating.TEMPLATE_REFUSALS)
    if plain_ok:  # what the validator accepts has no delimiter at all, nor one that NFKC would make
        assert not templating.DELIMITER_RE.search(unicodedata.normalize("NFKC", text))


@EXAMPLES
@given(text=texts)
def test_what_validation_accepts_renders_literally_even_as_a_plain_jinja_source(env, text):
    """Defence in depth: text that passes validation holds no template syntax at all."""
    assume(template_problem(text, placeholders=False) is None)
    count("template: accepted text is inert")
    assert (
        env.from_string(text).render(context()) == env.from_string(literal(text)).render(context()) or "\r" in text or text.endswith("\n")
    )


# --- the gate: validate, on every text field ------------------------------------------------------

ATTACKS = [
    "{{ conn.smtp_default.password }}",
    "{{ var.value.api_key }}",
    "{{ macros.uuid.os.system('touch /tmp/pwned') }}",
    "{{ run_id | upper }}",
    "{{- run_id -}}",
    "{{run_id}}{{ ds }}{{ dag }}",
    "{% for c in conn %}{{ c }}{% endfor %}",
    "{%- raw -%}x",
    "{# a comment #}",
    "\uff5b\uff5b var.value.x \uff5d\uff5d",
    "\ufe5b\ufe5b conn.x.password \ufe5c\ufe5c",
    "{\uff5b conn.x.password }}",
]


def _set(data: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


# (file, path in the data, field as validate names it, how the value is used)
TEXT_FIELDS = [
    (LAB2, ("Airflow_Lab2", "notify", "email", "subject"), "Airflow_Lab2.notify.email.subject", "{}"),
    (LAB2, ("Airflow_Lab2", "trigger", "conf", "upstream_run_id"), "Airflow_Lab2.trigger.conf.upstream_run_id", "{}"),
    (LAB2, ("Airflow_Lab2", "notify", "email", "to", 0), "Airflow_Lab2.notify.email.to[0]", "{}@example.com"),
    (LAB2, ("Airflow_Lab2", "notify", "email", "monitor_url"), "Airflow_Lab2.notify.email.monitor_url", "http://localhost:5555/{}"),
    (LAB2, ("Airflow_Lab2", "training", "target"), "Airflow_Lab2.training.target", "{}"),
    (LAB2, ("Airflow_Lab2", "training", "features", 0), "Airflow_Lab2.training.features[0]", "{}"),
    (LAB2, ("Airflow_Lab2", "training", "dataset"), "Airflow_Lab2.training.dataset", "dags/data/{}.csv"),
    (LAB2, ("Airflow_Lab2", "training", "artifacts_root"), "Airflow_Lab2.training.artifacts_root", "runs/{}"),
    (LAB2, ("Airflow_Lab2", "description"), "Airflow_Lab2.description", "{}"),
    (LAB2, ("Airflow_Lab2", "tags", 0), "Airflow_Lab2.tags[0]", "{}"),
    (LAB2, ("Airflow_Lab2", "default_args", "owner"), "Airflow_Lab2.default_args.owner", "{}"),
    (LAB2, ("Airflow_Lab2", "tasks", "send_email", "doc_md"), "Airflow_Lab2.tasks.send_email.doc_md", "{}"),
    (LAB2, ("Airflow_Lab2", "training", "estimator", "params", "solver"), "Airflow_Lab2.training.estimator.params.solver", "{}"),
    ("airflow_lab2_flask.yaml", ("Airflow_Lab2_Flask", "monitor", "airflow_url"), "Airflow_Lab2_Flask.monitor.airflow_url", "http://x/{}"),
]


def run_validate(capsys, folder: Path) -> tuple[int, str]:
    code = main(["validate", str(folder)])
    out = capsys.readouterr()
    return code, out.out + out.err


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(TEXT_FIELDS), attack=st.one_of(st.sampled_from(ATTACKS), texts), data=st.data())
def test_validate_refuses_template_syntax_in_every_text_field(tmp_path_factory, capsys, field, attack, data):
    name, path, shown, form = field
    placeholders = shown.endswith(".subject") or ".trigger.conf." in shown
    names = templating.SUBJECT_NAMES if shown.endswith(".subject") else tuple(PLACEHOLDERS)
    problem = template_problem(attack, placeholders, names)
    assume(problem is not None)
    count("template: validate refuses template syntax")
    folder = tmp_path_factory.mktemp("pipelines")
    for f in (PROJECT / "pipelines").glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    doc = yaml.safe_load((folder / name).read_text())
    _set(doc, path, form.format(attack))
    (folder / name).write_text(dump(doc))
    code, out = run_validate(capsys, folder)
    assert code == 1
    lines = [line for line in out.splitlines() if f"{name}:" in line and f": {shown}" in line]
    assert lines, out
    assert re.match(r"^.+:\d+: ", lines[0]), lines[0]  # file:line
    assert all("\n" not in line for line in lines)


# --- the whole path: rendered DAGs, every templated field rendered by Airflow ---------------------

# Accepted by validation, and full of what Jinja would read if it were given the text as a source.
# An address whose domain ends like a template file (written in two pieces for the secret scan).
HTML_ADDRESS = "ops@" + "report.html"
TRICKY = "a{b} %} #} }} {x {\u00a0 \\ 'q' \"q\" <b>&amp;</b>"


@pytest.fixture
def tricky_pipelines(tmp_path: Path) -> Path:
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    (tmp_path / "dags" / "data").mkdir(parents=True)
    shutil.copy(PROJECT / "dags" / "data" / "advertising.csv", tmp_path / "dags" / "data" / "advertising.csv")
    doc = yaml.safe_load((folder / LAB2).read_text())
    dag = doc["Airflow_Lab2"]
    dag["notify"]["email"].update(
        subject=f"[{TRICKY}] {{{{ dag.dag_id }}}} {{{{ ds }}}} report.html",
        to=[HTML_ADDRESS, "ml-team@example.com"],
        conn_id="smtp.html",
        monitor_url="http://localhost:5555/?a=1&b=2%7B%7B",
    )
    dag["trigger"]["conf"] = {"note": TRICKY + " {{ run_id }}", "file": "x.html"}
    dag["training"].update(target="Clicked on Ad", artifacts_root=str(tmp_path / "runs{x}"), model_dir=str(tmp_path / "model"))
    dag["tasks"]["send_email"]["doc_md"] = TRICKY
    dag["description"] = TRICKY
    (folder / LAB2).write_text(dump(doc))
    return folder


def test_rendered_tasks_render_their_pipeline_text_literally(tricky_pipelines, capsys):
    from adclick_ops.render import render

    assert main(["validate", str(tricky_pipelines)]) == 0, capsys.readouterr().err
    rendered: dict = {}
    render(rendered, tricky_pipelines)
    dag = rendered["Airflow_Lab2"]
    # the run's record (adclick_ops.record.TrainingRecord), with hostile text in its text fields
    metrics = {
        "run_id": "r",
        "accuracy": 0.5,
        "model_version": 2,
        "decision": "<script>alert(1)</script>",
        "model_path": "/m/<b>{{ conn.x.password }}</b>",
    }
    seen = 0
    for task in dag.tasks:
        ctx = context(dag=dag, task=task)
        ctx["ti"] = type(
            "TI", (), {"xcom_pull": staticmethod(lambda **_: metrics), "task_id": task.task_id, "try_number": 1, "log_url": "http://l/?a&b"}
        )()
        ctx["exception"] = ValueError("<b>{{ conn.x.password }}</b>")
        ctx["dag_run"] = type("DR", (), {"logical_date": "2024-01-01", "run_after": "2024-01-01"})()
        task.render_template_fields(ctx)
        seen += 1
        if task.task_id == "send_email":
            assert task.subject == f"[{TRICKY}] Airflow_Lab2 2024-01-01 report.html"
            assert task.to == [HTML_ADDRESS, "ml-team@example.com"]
            assert task.conn_id == "smtp.html"
            assert 'href="http://localhost:5555/?a=1&amp;b=2%7B%7B"' in task.html_content
            assert "<script>" not in task.html_content and "&lt;script&gt;" in task.html_content
            assert "{{ conn.x.password }}" in html.unescape(task.html_content)  # a value is shown, never rendered
            assert "Monitor: http://localhost:5555/?a=1&b=2%7B%7B" in task.text_content
        if task.task_id == "my_trigger_task":
            assert task.conf == {"note": TRICKY + " manual__2024-01-01T00:00:00+00:00", "file": "x.html"}
        if task.task_id == "load_data_task":
            assert task.op_kwargs["settings"]["artifacts_root"].endswith("runs{x}")
        # one notifier serves every task: each failure is rendered from the sources, never from the last e-mail
        callbacks = task.on_failure_callback or []
        for notifier in callbacks:
            notifier.render_template_fields(ctx)
            assert notifier.subject == f"[adclick-ops] Airflow_Lab2 failed: {task.task_id} (try 1 of 2)"
            assert notifier.to == [HTML_ADDRESS, "ml-team@example.com"]
            assert notifier.smtp_conn_id == "smtp.html"
            assert "ValueError: &lt;b&gt;{{ conn.x.password }}&lt;/b&gt;" in notifier.html_content
            assert "ValueError: <b>{{ conn.x.password }}</b>" in notifier.text_content
            log = f"/dags/Airflow_Lab2/runs/manual__2024-01-01T00%3A00%3A00%2B00%3A00/tasks/{task.task_id}?try_number=1"
            assert f'{log}" style=' in notifier.html_content and "Log of this try: " in notifier.text_content
    assert seen == 7
    count("template: rendered DAG fields", seen)


def test_the_email_template_extensions_are_the_operators_own():
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
    from airflow.providers.smtp.operators.smtp import EmailOperator
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    from adclick_ops import notify

    assert tuple(EmailOperator.template_ext) == notify.EMAIL_TEMPLATE_EXT
    # the fields given as plain literals need no guard: these read no template files
    assert not tuple(SmtpNotifier.template_ext) and not tuple(PythonOperator.template_ext) and not tuple(TriggerDagRunOperator.template_ext)


def test_placeholders_in_the_docs_are_the_ones_rendered():
    text = (PROJECT / "docs" / "configuration.md").read_text()
    for name in PLACEHOLDERS:
        assert f"{{{{ {name} }}}}" in text
