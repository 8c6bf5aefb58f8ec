"""adclick_ops.notify and adclick_ops.operators: the run report and the failure alert.

The templates are rendered as Airflow renders them (the operator's and the notifier's own
render_template_fields, in a DAG's template environment), with contexts for every case a run can
produce: promoted, not promoted, first version, no comparison, missing or odd metrics, and hostile
strings in every value that comes from data or YAML. The messages are sent to a real SMTP server
(aiosmtpd) and read back; headless Chromium draws the HTML.
"""

from __future__ import annotations

import datetime as dt
import email
import html
import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops import notify
from adclick_ops.config.models import EmailNotification
from adclick_ops.config.templating import PLACEHOLDERS, SUBJECT_NAMES, as_template, template_problem
from adclick_ops.config.vocabulary import METRIC_LABELS, METRICS
from adclick_ops.operators import FailureNotifier, ReportEmailOperator, one_line

from tests.support import PROJECT, body_text, mail_sink_for, mandatory_in_ci

ARTIFACTS = PROJECT / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EXAMPLES = settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

HOSTILE = [
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    "{% for x in range(3) %}loop{% endfor %}",
    "{# comment #}",
    "\"'><img src=x onerror=alert(1)>",
    "&amp; &lt;b&gt;",
    "javascript:alert(1)",
    "line one\r\nBcc: victim@example.com",
    "{{ conn.smtp_default.password }}",
]
STARTED = dt.datetime(2024, 1, 1, 8, 0, 0, tzinfo=dt.UTC)
# the monitor's amber and red (adclick_ops/monitor/static/monitor.css), as the e-mails' styles say them
WAIT, BAD = "#9a6700", "#cf222e"


def metrics(**change: Any) -> dict[str, Any]:
    """A metrics XCom of load_model_task, as a promoted second version writes it."""
    out: dict[str, Any] = {
        "accuracy": 0.97,
        "precision": 0.9801,
        "recall": 0.9612,
        "f1": 0.9705,
        "roc_auc": 0.9863,
        "n_test": 300,
        "confusion_matrix": [[150, 3], [6, 141]],
        "estimator": "LogisticRegression",
        "scalers": ["MinMaxScaler", "StandardScaler"],
        "model_version": 7,
        "promoted": True,
        "champion_version": 7,
        "previous_champion_version": 6,
        "previous_champion_metrics": {"accuracy": 0.96, "precision": 0.99, "recall": 0.95, "f1": 0.9705, "roc_auc": 0.98},
        "holdout_rows": 212,
        "decision": "version 7 beats version 6 on roc_auc (0.9863 > 0.9800)",
        "model_path": "/srv/model/model.sav",
        "run_id": "manual__2024-01-01T08:00:00+00:00",
    }
    # this run on the champion's held-out rows: the test set's values here, so the changes read as before
    out.setdefault("holdout_metrics", {name: out[name] for name in METRICS if name in out})
    out.update(change)
    return out


class TI:
    """The parts of a task instance the templates read."""

    def __init__(self, pulled: Any, task_id: str = "send_email", try_number: int = 1, max_tries: int | None = 1, failure: Any = None):
        self._pulled, self._failure = pulled, failure
        self.task_id, self.dag_id, self.run_id = task_id, "Airflow_Lab2", "manual__2024-01-01T08:00:00+00:00"
        self.try_number = try_number
        if max_tries is not None:
            self.max_tries = max_tries
        self.start_date = STARTED + dt.timedelta(minutes=2, seconds=13)

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        if key == "failure":
            return self._failure
        assert task_ids == "load_model_task"
        return self._pulled


class DagRun:
    def __init__(self, start_date: Any = STARTED):
        self.start_date = start_date
        self.logical_date = None
        self.run_after = STARTED


@pytest.fixture
def dag():
    from airflow.sdk import DAG

    return DAG("Airflow_Lab2", schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))


def context(dag, ti: TI, run_id: str = "manual__2024-01-01T08:00:00+00:00", **extra: Any) -> dict[str, Any]:
    return {"dag": dag, "ti": ti, "run_id": run_id, "dag_run": DagRun(), "ds": "2024-01-01", **extra}


def report_task(dag, email_settings: EmailNotification | None = None) -> ReportEmailOperator:
    """The report task in a DAG of its own (hypothesis calls a test many times with one `dag`)."""
    from airflow.sdk import DAG

    settings_ = email_settings or EmailNotification(to=["ml-team@example.com"])
    own = DAG(dag.dag_id, schedule=None, start_date=dag.start_date)
    return ReportEmailOperator(task_id="send_email", dag=own, **notify.email_operator_args(settings_, with_text=True))


def render_report(dag, pulled: Any, email_settings: EmailNotification | None = None, **ctx: Any) -> ReportEmailOperator:
    task = report_task(dag, email_settings)
    task.render_template_fields(context(task.dag, TI(pulled), task=task, **ctx))
    return task


class Tags(HTMLParser):
    """Every tag and attribute of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "body",
    "table",
    "tr",
    "td",
    "th",
    "h1",
    "h2",
    "p",
    "span",
    "b",
    "code",
    "small",
    "a",
    "pre",
}
ALLOWED_ATTRS = {"lang", "charset", "name", "content", "style", "role", "width", "cellpadding", "cellspacing", "border", "align"}
ALLOWED_ATTRS |= {"id", "scope", "href"}


def check_markup(document: str) -> Tags:
    """Only the report's own markup: no tag, attribute, script, style block or external resource from a value."""
    parser = Tags()
    parser.feed(document)
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, (tag, attrs)
        assert set(attrs) <= ALLOWED_ATTRS, (tag, attrs)
        if "href" in attrs:
            assert re.match(r"^https?://", attrs["href"] or ""), attrs
    assert "<style" not in document and "<script" not in document.lower() and "src=" not in document.replace("src=x", "")
    return parser


# --- the run report -------------------------------------------------------------------------------


def test_a_promoted_version_reports_status_headline_changes_matrix_duration_and_links(dag):
    task = render_report(dag, metrics())
    assert task.subject == "[adclick-ops] Airflow_Lab2 succeeded: accuracy 0.970, v7 champion"
    page = task.html_content
    check_markup(page)
    assert 'id="headline"' in page and ">0.9700</span>" in page and "v7 champion" in page
    for name in METRICS:  # this run, the champion before it, and the change
        assert f"{metrics()[name]:.4f}" in page
        assert f"{metrics()['previous_champion_metrics'][name]:.4f}" in page
    assert "+0.0100" in page and "-0.0099" in page and "+0.0000" in page and "+0.0063" in page
    assert "Change against version 6, the champion before this run, both scored on the same 212 held-out rows" in page
    assert all(f">{n} <small" in page for n in (150, 3, 6, 141)) and "TN" in page and "TP" in page
    assert "2 min 13 s" in page
    assert "MinMaxScaler, StandardScaler" in page and "LogisticRegression" in page
    assert 'href="http://localhost:8080/dags/Airflow_Lab2/runs/manual__2024-01-01T08%3A00%3A00%2B00%3A00"' in page
    assert 'href="http://localhost:5555"' in page
    # the text part says the same facts
    text = task.text_content
    assert text.startswith("Airflow_Lab2 succeeded: Accuracy 0.9700, v7 champion\n")
    assert "Trained version 7: it is the champion now." in text
    assert "Accuracy   0.9700    0.9700    0.9600              +0.0100" in text
    assert "ROC AUC    0.9863    0.9863    0.9800              +0.0063" in text
    assert "actual 0      150 TN        3 FP" in text and "actual 1      6 FN          141 TP" in text
    assert "Run time so far:     2 min 13 s" in text
    assert "This run in Airflow: http://localhost:8080/dags/Airflow_Lab2/runs/manual__2024-01-01T08%3A00%3A00%2B00%3A00" in text
    assert text.endswith("\nMonitor: http://localhost:5555")


def test_a_version_not_promoted_says_so_and_names_the_champion(dag):
    task = render_report(dag, metrics(model_version=8, promoted=False, champion_version=7, decision="version 8 does not beat version 7"))
    assert task.subject == "[adclick-ops] Airflow_Lab2 succeeded: accuracy 0.970, v8 not promoted"
    assert "not promoted</b>; the champion stays version 7" in task.html_content
    assert WAIT in task.html_content  # the amber of the monitor, not its green
    assert "kept, NOT promoted; the champion stays version 7." in task.text_content
    assert "version 8 does not beat version 7" in task.text_content


def test_the_first_version_says_there_is_nothing_to_compare_with(dag):
    task = render_report(dag, metrics(model_version=1, champion_version=1, previous_champion_version=None, previous_champion_metrics=None))
    assert task.subject == "[adclick-ops] Airflow_Lab2 succeeded: accuracy 0.970, v1 champion"
    for part in (task.html_content, task.text_content):
        assert "First version: no champion before it to compare with." in part
        assert "previous champion" not in part and "+0.0" not in part


def test_metrics_without_the_comparison_keys_render_without_a_comparison(dag):
    """A metrics XCom from before `previous_champion_metrics` and `scalers` existed."""
    old = metrics()
    for key in ("previous_champion_metrics", "scalers"):
        old.pop(key)
    task = render_report(dag, old)
    for part in (task.html_content, task.text_content):
        assert "previous champion" not in part and "First version" not in part and "scalers" not in part
        assert "0.9700" in part and "LogisticRegression" in part


@pytest.mark.parametrize("pulled", [None, {}])
def test_no_metrics_is_an_incomplete_report_not_an_error(dag, pulled):
    task = render_report(dag, pulled)
    assert task.subject == "[adclick-ops] Airflow_Lab2 incomplete: accuracy n/a, no version"
    check_markup(task.html_content)
    assert "incomplete</span>: no metrics" in task.html_content and BAD in task.html_content
    assert task.text_content.startswith("Airflow_Lab2 incomplete: load_model_task returned no metrics to this task\n")
    assert "Monitor: http://localhost:5555" in task.text_content


@pytest.mark.parametrize(
    ("pulled", "problem"),
    [
        ("not a mapping", "record: expected an object of fields, found str 'not a mapping'"),
        ([1, 2], "record: expected an object of fields, found list [1, 2]"),
        ({"accuracy": 0.9}, "run_id: missing"),
        (metrics(accuracy="high"), "accuracy: input should be a valid number, found 'high'"),
        (metrics(model_version=[7]), "model_version: input should be a valid integer, found [7]"),
        (metrics(accuracy=10**400), "accuracy: input should be a valid number, found 1000000"),
        (metrics(confusion_matrix="[[1,2],[3,4]]"), "confusion_matrix: input should be a valid list, found '[[1,2],[3,4]]'"),
        (metrics(accuracy=[0.9], recall={"v": 1}), "accuracy: input should be a valid number, found [0.9]"),
        (metrics(accuracy=float("nan")), "accuracy: expected a finite number, found nan"),
        (metrics(roc_auc=float("-inf")), "roc_auc: expected a finite number, found -inf"),
    ],
    ids=["text", "list", "no run id", "metric", "version", "huge", "matrix", "two fields", "nan", "infinity"],
)
def test_a_malformed_record_is_named_in_one_line_not_an_error(dag, pulled, problem):
    """The report reads the run's TrainingRecord as the monitor does (TrainingRecord.parse): a record that is not one says what is wrong, in one line."""
    task = render_report(dag, pulled)
    assert task.subject == "[adclick-ops] Airflow_Lab2 incomplete: accuracy n/a, no version"
    parsed = check_markup(task.html_content)
    assert "incomplete</span>: unreadable record" in task.html_content and BAD in task.html_content
    shown = "".join(parsed.text)
    assert f"The record load_model_task returned is malformed: {problem}" in shown
    first, rest = task.text_content.split("\n", 1)
    assert first.startswith(f"Airflow_Lab2 incomplete: the record load_model_task returned is malformed: {problem}")
    assert "METRICS" not in rest and "PROMOTION" not in rest and "Monitor: http://localhost:5555" in rest


# valid in a TrainingRecord, and not a number to show (NaN and infinity make the record unreadable, as on the monitor)
ODD_VALUES = [None]


@pytest.mark.parametrize("odd", ODD_VALUES, ids=repr)
def test_odd_metric_values_show_as_n_a(dag, odd):
    pulled = metrics(**dict.fromkeys(METRICS, odd))
    pulled["previous_champion_metrics"] = dict.fromkeys(METRICS, odd)
    pulled["holdout_metrics"] = dict.fromkeys(METRICS, odd)
    task = render_report(dag, pulled)
    assert task.subject == "[adclick-ops] Airflow_Lab2 succeeded: accuracy n/a, v7 champion"
    for name, label in METRIC_LABELS.items():
        assert f"{label:<11}n/a       n/a       n/a                 n/a\n" in task.text_content, name
    check_markup(task.html_content)


@pytest.mark.parametrize("matrix", [None, [], [[1, 2]], [[1, 2, 3], [4, 5, 6]], [[1], [2, 3]], [[1, 2], [3, 4], [5, 6]]])
def test_a_confusion_matrix_that_is_not_two_by_two_is_left_out(dag, matrix):
    task = render_report(dag, metrics(confusion_matrix=matrix))
    assert 'id="confusion"' not in task.html_content and "CONFUSION MATRIX" not in task.text_content
    assert "0.9700" in task.text_content


@pytest.mark.parametrize(
    "start",
    [None, "2024-01-01", dt.datetime(2024, 1, 1, 8, 0), STARTED + dt.timedelta(hours=1)],
    ids=["none", "text", "naive", "after the task"],
)
def test_a_run_time_that_cannot_be_worked_out_is_n_a(dag, start):
    task = report_task(dag)
    task.render_template_fields({**context(dag, TI(metrics())), "dag_run": DagRun(start)})
    assert "Run time so far:     n/a" in task.text_content


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0 s"), (59, "59 s"), (61, "1 min 1 s"), (3599, "59 min 59 s"), (7384, "2 h 3 min")])
def test_the_run_time_is_read_as_a_person_says_it(dag, seconds, shown):
    ti = TI(metrics())
    ti.start_date = STARTED + dt.timedelta(seconds=seconds)
    task = report_task(dag)
    task.render_template_fields(context(dag, ti))
    assert f"Run time so far:     {shown} (" in task.text_content


@pytest.mark.parametrize("headline", METRICS)
def test_the_headline_metric_comes_from_the_yaml(dag, headline):
    task = render_report(dag, metrics(), EmailNotification(to=["a@example.com"], headline_metric=headline))
    value = metrics()[headline]
    assert task.subject == f"[adclick-ops] Airflow_Lab2 succeeded: {headline} {value:.3f}, v7 champion"
    assert task.text_content.startswith(f"Airflow_Lab2 succeeded: {METRIC_LABELS[headline]} {value:.4f}, v7 champion\n")


hostile = st.sampled_from(HOSTILE)
# the record's text fields that the report shows; a hostile value in a number field makes the record malformed
TEXT_KEYS = ("decision", "model_path", "estimator")


@EXAMPLES
@given(
    values=st.fixed_dictionaries({key: hostile for key in TEXT_KEYS}),
    scalers=st.lists(hostile, max_size=3),
    run_id=hostile,
    promoted=st.booleans(),
    number=st.sampled_from(["model_version", "champion_version", "n_test", "accuracy", "holdout_rows"]),
    bad=hostile,
)
def test_hostile_values_are_shown_escaped_and_never_rendered(dag, values, scalers, run_id, promoted, number, bad):
    pulled = metrics(**values, scalers=scalers, promoted=promoted)
    task = report_task(dag)
    task.render_template_fields(context(task.dag, TI(pulled), run_id=run_id, task=task))
    malformed = report_task(dag)
    malformed.render_template_fields(context(malformed.dag, TI(metrics(**{number: bad})), run_id=run_id, task=malformed))
    for rendered, shown_values in ((task, [*values.values(), *scalers, run_id]), (malformed, [repr(bad), run_id])):
        parsed = check_markup(rendered.html_content)
        shown = html.unescape(rendered.html_content)
        for value in shown_values:
            if "\r" not in value:
                assert value in shown and value in rendered.text_content, value
        assert "loop" not in "".join(parsed.text).replace("{% for x in range(3) %}loop{% endfor %}", "")  # no statement ran
        assert not re.search(r"(?<![{ ])49", "".join(parsed.text))  # {{ 7*7 }} is shown, never computed
        assert "\n" not in one_line(rendered.subject) and "\r" not in one_line(rendered.subject)
    assert f"The record load_model_task returned is malformed: {number}: " in shown


SUBJECT_TEXTS = st.lists(
    st.one_of(
        st.sampled_from(["{", "}", "%}", "#}", "}}", " ", "\\", "'", '"', "<b>", ".html", "\u00a0", "x"]),
        st.sampled_from([f"{{{{ {name} }}}}" for name in SUBJECT_NAMES]),
    ),
    max_size=10,
).map("".join)


@EXAMPLES
@given(text=SUBJECT_TEXTS, promoted=st.booleans())
def test_a_subject_renders_its_text_with_only_the_placeholders_filled_in(dag, text, promoted):
    if template_problem(text, placeholders=True, names=SUBJECT_NAMES) is not None:
        with pytest.raises(ValueError, match="notify|template syntax|look"):
            EmailNotification(to=["a@example.com"], subject=text)
        return
    if not text.strip():
        return
    pulled = metrics(promoted=promoted, champion_version=7 if promoted else 6)
    task = render_report(dag, pulled, EmailNotification(to=["a@example.com"], subject=text))
    version = "v7 champion" if promoted else "v7 not promoted"
    facts = {"dag.dag_id": "Airflow_Lab2", "run_id": "manual__2024-01-01T08:00:00+00:00", "task.task_id": "send_email"}
    facts |= {"ds": "2024-01-01", "ds_nodash": "", "ts": "", "logical_date": ""}
    facts |= {"status": "succeeded", "metric": "accuracy 0.970", "version": version}
    from adclick_ops.config.templating import SUBJECT_PLACEHOLDER_RE

    assert task.subject == SUBJECT_PLACEHOLDER_RE.sub(lambda m: facts[m.group(1)], text)


def test_the_report_placeholders_belong_to_the_subject_only():
    for name in ("status", "metric", "version"):
        assert template_problem(f"{{{{ {name} }}}}", placeholders=True, names=SUBJECT_NAMES) is None
        assert template_problem(f"{{{{ {name} }}}}", placeholders=True) is not None  # not in trigger.conf
    problem = template_problem("{{ metric | upper }}", placeholders=True, names=SUBJECT_NAMES)
    assert problem is not None and "{{ status }}, {{ metric }}, {{ version }}" in problem
    assert as_template("{{ status }}") == "{{ '{' }}{{ '{' }} status }}"  # elsewhere it is text


def test_the_shipped_and_the_old_default_subjects_are_valid():
    import yaml

    shipped = yaml.safe_load((PROJECT / "pipelines" / "airflow_lab2.yaml").read_text())["Airflow_Lab2"]["notify"]["email"]
    assert EmailNotification.model_validate(shipped).subject == EmailNotification(to=["a@example.com"]).subject
    old = EmailNotification(to=["a@example.com"], subject="[adclick-ops] {{ dag.dag_id }} run {{ run_id }}")
    assert old.subject.endswith("{{ run_id }}") and set(PLACEHOLDERS) < set(SUBJECT_NAMES)


# --- the template files --------------------------------------------------------------------------


def test_the_bodies_are_template_files_in_a_sandboxed_autoescaping_environment():
    from jinja2 import StrictUndefined, UndefinedError
    from jinja2.sandbox import SandboxedEnvironment

    env = notify.environment()
    assert isinstance(env, SandboxedEnvironment) and env.undefined is StrictUndefined
    assert env.autoescape("report.html") and env.autoescape("failure.html") and env.autoescape(None)  # a string template too
    assert not env.autoescape("report.txt") and not env.autoescape("failure.txt")
    facts = notify.report_facts(context(type("D", (), {"dag_id": "d"})(), TI(metrics())))
    for name in ("report.html", "report.txt"):
        with pytest.raises(UndefinedError, match="monitor_url"):  # a fact left out fails, never renders as empty
            notify.render(name, {k: v for k, v in facts.items() if k != "monitor_url"})
    with pytest.raises(Exception, match="unsafe"):  # the sandbox: no way from a value to Python's internals
        env.from_string("{{ f.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}").render(f=facts)


def test_the_template_files_ship_in_the_package():
    import fnmatch
    import tomllib

    patterns = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["adclick_ops"]
    files = sorted(p.relative_to(PROJECT / "adclick_ops").as_posix() for p in notify.TEMPLATES.iterdir())
    assert {"templates/email/report.html", "templates/email/report.txt", "templates/email/failure.html"} < set(files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)] == []


# --- the failure alert ----------------------------------------------------------------------------


def failure_context(dag, exception: Any, **ti: Any) -> dict[str, Any]:
    from airflow.sdk import BaseOperator

    task = (
        dag.get_task("load_data_task") if "load_data_task" in dag.task_dict else BaseOperator(task_id="load_data_task", dag=dag, retries=1)
    )
    return {
        "dag": dag,
        "task": task,
        "ti": TI(None, task_id="load_data_task", **ti),
        "run_id": "scheduled__2024-01-01T00:00:00+00:00",
        "dag_run": DagRun(),
        "exception": exception,
    }


def notifier() -> FailureNotifier:
    config = notify.failure_callback_config(EmailNotification(to=["ml-team@example.com"]))
    config.pop("callback")
    return FailureNotifier(**config)


def test_the_failure_alert_names_task_try_error_and_log(dag):
    alert = notifier()
    alert.render_template_fields(failure_context(dag, FileNotFoundError("dataset file not found: /data/x.csv\nsecond line")))
    assert alert.subject == "[adclick-ops] Airflow_Lab2 failed: load_data_task (try 1 of 2)"
    log = "http://localhost:8080/dags/Airflow_Lab2/runs/scheduled__2024-01-01T00%3A00%3A00%2B00%3A00/tasks/load_data_task?try_number=1"
    page = alert.html_content
    check_markup(page)
    assert f'id="log" href="{log}"' in page
    assert ">FileNotFoundError: dataset file not found: /data/x.csv</pre>" in page and "second line" not in page
    assert "Not retried: Airflow does not retry this kind of error." in page
    text = alert.text_content
    assert "ERROR\nFileNotFoundError: dataset file not found: /data/x.csv\n" in text and f"Log of this try: {log}\n" in text
    assert "Try 1 of 2. Not retried" in text


def test_the_last_try_says_no_retry_is_left_and_the_failure_record_gives_the_kind(dag):
    alert = notifier()
    record = {"task_id": "load_data_task", "try_number": 2, "error": "x", "kind": "transient", "retryable": True, "max_tries": 2}
    alert.render_template_fields(failure_context(dag, TimeoutError("storage timed out"), try_number=2, failure=record))
    assert alert.subject == "[adclick-ops] Airflow_Lab2 failed: load_data_task (try 2 of 2)"
    assert "Try 2 of 2. No retry is left." in alert.text_content
    assert "Kind: transient (a retry may fix it)" in alert.text_content and "Kind: transient" in alert.html_content


@pytest.mark.parametrize(
    ("exception", "record", "shown"),
    [
        (None, None, "(no error message: see the log)"),
        ("", {"error": "DataError: column 'Age' is missing"}, "DataError: column 'Age' is missing"),
        ("AirflowFailException: given as text\nmore", None, "AirflowFailException: given as text"),
        (ValueError(""), None, "ValueError"),
        (ValueError("x" * 2000), None, "ValueError: " + "x" * (notify.ERROR_MAX - len("ValueError: ") - 3) + "..."),
    ],
)
def test_the_error_is_the_first_line_of_the_exception_at_most_500_characters(dag, exception, record, shown):
    alert = notifier()
    alert.render_template_fields(failure_context(dag, exception, failure=record))
    assert f"ERROR\n{shown}\n" in alert.text_content
    assert len(notify.first_line(exception)) <= notify.ERROR_MAX


def test_an_odd_failure_record_is_ignored(dag):
    alert = notifier()
    record = {"kind": "<script>", "retryable": "yes", "error": ["x"], "try_number": "1"}
    alert.render_template_fields(failure_context(dag, RuntimeError("boom"), failure=record, max_tries=None))
    assert "Kind" not in alert.text_content and "RuntimeError: boom" in alert.text_content
    assert alert.subject.endswith("(try 1 of 2)")  # the task's retries, when the task instance has no max_tries


@EXAMPLES
@given(message=st.lists(st.sampled_from([*HOSTILE, "\n", " ", "é"]), min_size=1, max_size=5).map("".join), run_id=hostile)
def test_hostile_exception_text_is_escaped_and_never_rendered(dag, message, run_id):
    alert = notifier()
    ctx = failure_context(dag, RuntimeError(message))
    ctx["run_id"] = run_id
    alert.render_template_fields(ctx)
    parsed = check_markup(alert.html_content)
    error = notify.first_line(RuntimeError(message))
    assert error in html.unescape(alert.html_content) and error in alert.text_content
    assert run_id.replace("\r\n", "\n") in "".join(parsed.text).replace("\r\n", "\n")
    assert "\n" not in one_line(alert.subject)


def test_each_failure_is_rendered_from_the_sources(dag):
    """One notifier serves every task: the second failure never renders the first one's text."""
    alert = notifier()
    alert.render_template_fields(failure_context(dag, RuntimeError("{{ 7*7 }} first")))
    alert.render_template_fields(failure_context(dag, RuntimeError("second")))
    assert "first" not in alert.text_content and "RuntimeError: second" in alert.text_content


# --- through a real SMTP server -------------------------------------------------------------------


@pytest.fixture
def sink(monkeypatch):
    with mail_sink_for("smtp_default", monkeypatch) as server:
        yield server


def parts(message: email.message.Message) -> dict[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    return {p.get_content_type(): p.get_payload(decode=True).decode(p.get_content_charset()) for p in message.get_payload()}


def test_the_report_is_sent_as_text_and_html_alternatives(dag, sink):
    subject = EmailNotification(to=["ml-team@example.com"], subject="[adclick-ops] {{ run_id }} {{ version }}")
    task = render_report(dag, metrics(), subject, run_id="r1\r\nBcc: victim@example.com")
    assert task.execute({}) == ["ml-team@example.com"]
    ((recipients, message),) = sink.messages
    assert recipients == ["ml-team@example.com"]
    assert message["Subject"] == "[adclick-ops] r1 Bcc: victim@example.com v7 champion"
    assert message["Bcc"] is None
    got = parts(message)
    assert list(got) == ["text/plain", "text/html"]
    assert "Accuracy   0.9700" in got["text/plain"] and 'id="headline"' in got["text/html"]


def test_without_a_text_part_the_providers_operator_sends_the_html_report(dag, sink):
    """`operator: ...smtp.EmailOperator` in the YAML: the same report, HTML only, sent by the provider's own code."""
    from airflow.sdk import DAG

    own = DAG(dag.dag_id, schedule=None, start_date=dag.start_date)
    args = notify.email_operator_args(EmailNotification(to=["ml-team@example.com"]), with_text=False)
    task = ReportEmailOperator(task_id="send_email", dag=own, **args)
    task.render_template_fields(context(own, TI(metrics()), task=task))
    assert task.text_content == ""
    task.execute({})
    ((recipients, message),) = sink.messages
    assert recipients == ["ml-team@example.com"]
    assert message["Subject"] == "[adclick-ops] Airflow_Lab2 succeeded: accuracy 0.970, v7 champion"
    types = [part.get_content_type() for part in message.walk() if not part.is_multipart()]
    assert types == ["text/html"] and 'id="headline"' in body_text(message)


def test_the_failure_alert_is_sent_as_text_and_html_alternatives(dag, sink):
    alert = notifier()
    alert(failure_context(dag, ValueError("<b>bad</b> {{ 7*7 }}")))
    ((recipients, message),) = sink.messages
    assert recipients == ["ml-team@example.com"]
    assert message["Subject"] == "[adclick-ops] Airflow_Lab2 failed: load_data_task (try 1 of 2)"
    got = parts(message)
    assert "ValueError: <b>bad</b> {{ 7*7 }}" in got["text/plain"]
    assert "ValueError: &lt;b&gt;bad&lt;/b&gt; {{ 7*7 }}" in got["text/html"]
    assert "{{ 7*7 }}" in body_text(message)


# --- drawn by a browser ---------------------------------------------------------------------------


def _png_image(data: bytes) -> tuple[tuple[int, ...], bytes]:
    """The IHDR fields and the decompressed image data of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, header = 8, b"", None
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    assert header is not None
    return header, zlib.decompress(idat)


def _unfilter(kind: int, row: bytearray, previous: bytearray, bpp: int) -> bytearray:
    """A scanline with its PNG filter (1 sub, 2 up, 3 average, 4 Paeth) undone, in place."""
    for x in range(len(row)):
        a = row[x - bpp] if x >= bpp else 0
        b, c = previous[x], previous[x - bpp] if x >= bpp else 0
        if kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predicted = a if pa <= pb and pa <= pc else b if pb <= pc else c
        else:
            predicted = {1: a, 2: b, 3: (a + b) // 2}.get(kind, 0)
        row[x] = (row[x] + predicted) & 0xFF
    return row


def png_colours(data: bytes, limit: int = 50) -> int:
    """How many distinct pixel values a PNG (8-bit RGB or RGBA, as Chromium writes) has, up to `limit`."""
    header, raw = _png_image(data)
    width, height, depth, colour_type = header[:4]
    assert depth == 8 and colour_type in (2, 6), header
    bpp = 3 if colour_type == 2 else 4
    stride = width * bpp
    previous, seen = bytearray(stride), set()
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, bpp)
        seen.update(bytes(row[i : i + bpp]) for i in range(0, stride, bpp * 7))
        if len(seen) >= limit:
            return len(seen)
        previous = row
    return len(seen)


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        mandatory_in_ci("headless Chromium is not installed (Debian: apt-get install chromium)")
    return str(path)


@pytest.mark.browser
@pytest.mark.parametrize("which", ["report", "failure"])
def test_the_e_mails_render_in_chromium(dag, chromium, tmp_path, which):
    if which == "report":
        document = render_report(dag, metrics(model_version=8, promoted=False, champion_version=7)).html_content
    else:
        alert = notifier()
        alert.render_template_fields(failure_context(dag, ValueError("dataset file not found: /data/advertising.csv")))
        document = alert.html_content
    page = tmp_path / f"{which}.html"
    page.write_text(document, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"email_{which}.png"
    shot.unlink(missing_ok=True)
    result = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=800,1300",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert len(data) > 10_000  # a drawn page, not an empty image
    assert png_colours(data) >= 20  # text, the header bar, the status colours: many colours, not one


def test_an_identical_retrain_of_the_champion_says_that_version_serves(dag):
    decision = "not promoted: identical: run r2 trained the model of version 7 (run r1) again; it is the champion"
    task = render_report(dag, metrics(promoted=False, model_version=7, champion_version=7, decision=decision))
    assert task.subject == "[adclick-ops] Airflow_Lab2 succeeded: accuracy 0.970, v7 champion"
    assert decision in task.text_content and "v7 champion" in task.html_content
    lost = render_report(dag, metrics(promoted=False, model_version=8, champion_version=7, decision="not promoted: lost: ..."))
    assert lost.subject == "[adclick-ops] Airflow_Lab2 succeeded: accuracy 0.970, v8 not promoted"
