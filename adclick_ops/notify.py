"""E-mail content: the run report sent by the e-mail task and the failure alert.

The bodies are Jinja template files beside this module (adclick_ops/templates/email/: report.html,
report.txt, failure.html, failure.txt, and the frame and styles they share), rendered by a sandboxed
environment that escapes every value in the HTML parts. This module gathers the facts they show:
`report_facts` from the run's TrainingRecord (adclick_ops.record) in the XCom of `load_model_task`,
validated, and `failure_facts` from the failing task's context; and the arguments the factory hands
to the operators (adclick_ops.operators), which render the bodies at run time.

No pipeline text is template source: the subject goes through `as_template` (its placeholders, the
rest literal) and is rendered by Airflow; recipients and connection ids through `literal`. Values
from YAML or from the run reach the bodies only as values of the facts, never as template text.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from adclick_ops.config.models import EmailNotification
from adclick_ops.config.templating import PLACEHOLDERS, as_template, literal
from adclick_ops.config.vocabulary import AIRFLOW_URL, METRIC_LABELS, METRICS_TASK_ID, MONITOR_URL, XCOM_FAILURE_KEY
from adclick_ops.record import RecordUnreadable, TrainingRecord

SMTP_NOTIFIER = "adclick_ops.operators.FailureNotifier"  # the provider's SmtpNotifier, rendered afresh each time
# The template extensions of the operators that send mail (EmailOperator.template_ext): a field
# ending with one is read as a template file's name (tests/test_notify.py keeps this in step).
EMAIL_TEMPLATE_EXT = (".html",)
# The context entries the operators fill with the facts of a report and of a failure, for the subjects.
REPORT_CONTEXT_KEY = "adclick_report"
FAILURE_CONTEXT_KEY = "adclick_failure"
TEMPLATES = Path(__file__).parent / "templates" / "email"
DEFAULT_HEADLINE = "accuracy"


def airflow_ui_url() -> str:
    """Base URL of the Airflow UI for links in e-mails: Airflow's [api] base_url."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback=None) or AIRFLOW_URL).rstrip("/")


# --- the template environment ---------------------------------------------------------------------


def _finite(value: Any) -> bool:
    """A number the e-mails show: finite, not a boolean (anything else shows as `n/a`)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and -1e300 < value < 1e300


def num(value: Any, spec: str = "%.4f") -> str:
    """`value` formatted with `spec`, or 'n/a'."""
    return spec % value if _finite(value) else "n/a"


def signed(value: Any) -> str:
    return num(value, "%+.4f")


@functools.cache
def environment() -> Any:
    """The sandboxed Jinja environment of the e-mail templates: autoescape in the .html ones, undefined names fail.

    Built on first use: the core install (validate, plan) has no Jinja. Line breaks and the indentation after
    them are dropped from the HTML templates before Jinja reads them (an HTML e-mail is one line, as
    it always was); the text templates are read with trim_blocks.
    """
    from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
    from jinja2.ext import Extension
    from jinja2.sandbox import SandboxedEnvironment

    class OneLineHtml(Extension):
        def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
            return re.sub(r"\n[ \t]*", "", source) if name and name.endswith(".html") else source

    env = SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        extensions=[OneLineHtml],
    )
    env.filters.update(num=num, signed=signed)
    return env


def render(template: str, facts: Mapping[str, Any]) -> str:
    """The template `template` (a file name in TEMPLATES) with `facts`."""
    return environment().get_template(template).render(facts)


# --- the run report -------------------------------------------------------------------------------


def read_record(value: Any) -> tuple[TrainingRecord | None, str | None]:
    """The run's record in the XCom `value`, or None and why it cannot be read (None when nothing was returned)."""
    if value is None or value == {}:
        return None, None
    try:
        return TrainingRecord.parse(value), None
    except RecordUnreadable as exc:  # the monitor and the console read it the same way, and say the same
        return None, str(exc).removeprefix("record unreadable: ")


def took(context: Mapping[str, Any]) -> str:
    """The run time so far, as a person says it: from the run's start to the start of this task, or 'n/a'."""
    t0 = getattr(context.get("dag_run"), "start_date", None)
    t1 = getattr(context.get("ti"), "start_date", None)
    if not (isinstance(t0, dt.datetime) and isinstance(t1, dt.datetime) and t0.tzinfo is not None and t1.tzinfo is not None):
        return "n/a"
    seconds = round((t1 - t0).total_seconds())
    if seconds < 0:
        return "n/a"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60} min"


def _trend(now: float, before: float) -> str:
    return "up" if now > before else ("down" if now < before else "none")


def metric_rows(record: TrainingRecord) -> list[dict[str, Any]]:
    """Each metric: this run on the test set and on the held-out rows, the champion before it on those rows, and the change."""
    test = {name: getattr(record, name) for name in METRIC_LABELS}
    # this run's metrics on the rows the champion was scored on (records before them: the test set's)
    holdout = record.holdout_metrics if record.holdout_metrics is not None else test
    previous = record.previous_champion_metrics or {}
    rows = []
    for name, label in METRIC_LABELS.items():
        now, before = holdout.get(name), previous.get(name)
        both = _finite(now) and _finite(before)
        change, trend = (now - before, _trend(now, before)) if both else (None, "none")  # type: ignore[operator]
        rows.append({"label": label, "test": test[name], "holdout": now, "previous": before, "change": change, "trend": trend})
    return rows


def confusion(record: TrainingRecord) -> list[list[int]] | None:
    """The confusion matrix when it is two by two; otherwise the report leaves it out."""
    cm = record.confusion_matrix
    return cm if cm is not None and len(cm) == 2 and all(len(row) == 2 for row in cm) else None


def _decision_facts(record: TrainingRecord | None) -> dict[str, Any]:
    """What became of the version trained, and the report's colour: green promoted, amber kept, red no record."""
    r = record or TrainingRecord.model_construct()
    version = r.model_version
    # an identical retrain of the champion is recorded against it: that version serves, though nothing was promoted
    serving = r.promoted or (version is not None and r.champion_version == version)
    tone = ("ok" if r.promoted else "wait") if version is not None else ("ok" if record else "bad")
    return {"version": version, "promoted": r.promoted, "serving": serving, "tone": tone}


def _record_facts(record: TrainingRecord | None, headline: str) -> dict[str, Any]:
    r = record or TrainingRecord.model_construct()
    given = r.model_fields_set  # a record from before a field existed leaves it out, and so does the report
    return {
        "r": r,
        "headline": METRIC_LABELS[headline],  # type: ignore[index]
        "headline_value": getattr(r, headline),
        "rows": metric_rows(r),
        "compare": r.previous_champion_metrics is not None,
        "first": r.previous_champion_metrics is None and "previous_champion_version" in given and r.previous_champion_version is None,
        "confusion": confusion(r),
        "scalers": ", ".join(r.scalers) if "scalers" in given else None,
    }


def report_facts(
    context: Mapping[str, Any], headline: str = DEFAULT_HEADLINE, monitor_url: str = MONITOR_URL, airflow_url: str = AIRFLOW_URL
) -> dict[str, Any]:
    """What the run report says, from the e-mail task's context: the run's record and the facts of the run."""
    ti, dag_run = context.get("ti"), context.get("dag_run")
    record, problem = read_record(ti.xcom_pull(task_ids=METRICS_TASK_ID) if ti is not None else None)
    return {
        "record": record is not None,
        "problem": problem,
        "metrics_task": METRICS_TASK_ID,
        "dag_id": context["dag"].dag_id,
        "run_id": context["run_id"],
        "task_id": getattr(ti, "task_id", "?"),
        "date": str(getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)),
        "took": took(context),
        "airflow_url": airflow_url.rstrip("/"),
        "monitor_url": monitor_url,
        **_decision_facts(record),
        **_record_facts(record, headline),
    }


def subject_facts(facts: Mapping[str, Any], headline: str = DEFAULT_HEADLINE) -> dict[str, str]:
    """The report's own subject placeholders, {{ status }}, {{ metric }} and {{ version }}, from its facts."""
    version = facts["version"]
    return {
        "status": "succeeded" if facts["record"] else "incomplete",
        "metric": f"{headline} {num(facts['headline_value'], '%.3f')}",
        "version": "no version" if version is None else f"v{version} {'champion' if facts['serving'] else 'not promoted'}",
    }


def subject_placeholders() -> dict[str, str]:
    """Each placeholder of the report's subject and the Jinja source Airflow renders for it: the shared ones
    (PLACEHOLDERS) and the report's own, which ReportEmailOperator puts in the context (subject_facts)."""
    return {**PLACEHOLDERS, **{name: f"{{{{ {REPORT_CONTEXT_KEY}.{name} }}}}" for name in ("status", "metric", "version")}}


# --- the failure alert ----------------------------------------------------------------------------

FAILURE_SUBJECT = f"{{{{ {FAILURE_CONTEXT_KEY}.subject }}}}"
ERROR_MAX = 500
FAILURE_KINDS = ("data", "gate", "config", "transient", "error")


def first_line(exception: Any) -> str:
    """`ExcType: message`, the first line of the message only, at most ERROR_MAX characters."""
    if exception is None or exception == "":
        return ""
    if isinstance(exception, BaseException):
        message = str(exception).strip()
        line = message.splitlines()[0] if message else ""
        text = f"{type(exception).__name__}: {line}" if line else type(exception).__name__
    else:
        lines = str(exception).strip().splitlines()
        text = lines[0] if lines else ""
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 3] + "..."


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _failure_record(ti: Any, task_id: str) -> dict[str, Any]:
    """The `failure` XCom the task pushed, or {}."""
    try:
        pulled = ti.xcom_pull(task_ids=task_id, key=XCOM_FAILURE_KEY) if ti is not None else None
    except Exception:  # no XCom backend here (a callback outside a worker), or none pushed
        return {}
    return pulled if isinstance(pulled, dict) else {}


def _tries(ti: Any, task: Any, record: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """This try's number and the number of tries the task has."""
    try_number = _int(getattr(ti, "try_number", None)) or _int(record.get("try_number"))
    max_tries = _int(getattr(ti, "max_tries", None))
    retries = _int(getattr(task, "retries", None))
    tries = max_tries + 1 if max_tries is not None else (retries + 1 if retries is not None else None)
    if try_number is not None and tries is not None and tries < try_number:
        tries = try_number
    return try_number, tries


def failure_facts(context: Mapping[str, Any], airflow_url: str) -> dict[str, Any]:
    """What the failure alert says, from the failing task's context (and its `failure` XCom when there is one).

    Never raises on an odd context: a value it cannot read is left out or shown as '?'.
    """
    ti, task, dag = context.get("ti"), context.get("task"), context.get("dag")
    dag_id = str(getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or "?")
    task_id = str(getattr(ti, "task_id", None) or getattr(task, "task_id", None) or "?")
    run_id = str(context.get("run_id") or getattr(ti, "run_id", None) or "?")
    record = _failure_record(ti, task_id)
    try_number, tries = _tries(ti, task, record)
    error = first_line(context.get("exception")) or first_line(record.get("error")) or "(no error message: see the log)"
    retried = try_number is not None and tries is not None and try_number < tries
    run_url = f"{airflow_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    shown_try = f"try {try_number if try_number is not None else '?'} of {tries if tries is not None else '?'}"
    return {
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": try_number if try_number is not None else "?",
        "tries": tries if tries is not None else "?",
        "error": error,
        "kind": record.get("kind") if record.get("kind") in FAILURE_KINDS else None,
        "retryable": record.get("retryable") if isinstance(record.get("retryable"), bool) else None,
        "retry_note": "Not retried: Airflow does not retry this kind of error." if retried else "No retry is left.",
        "log_url": f"{run_url}/tasks/{quote(task_id, safe='')}" + (f"?try_number={try_number}" if try_number else ""),
        "run_url": run_url,
        "subject": f"[adclick-ops] {dag_id} failed: {task_id} ({shown_try})",
    }


# --- the arguments the factory hands to the operators ---------------------------------------------


def recipients(email: EmailNotification) -> list[str]:
    return [literal(address, EMAIL_TEMPLATE_EXT) for address in email.to]


def email_operator_args(email: EmailNotification, with_text: bool) -> dict[str, Any]:
    """Arguments of ReportEmailOperator, the e-mail task that sends the run report (`with_text`: with a plain-text part)."""
    return {
        "to": recipients(email),
        "subject": as_template(email.subject, EMAIL_TEMPLATE_EXT, subject_placeholders()),
        "conn_id": literal(email.conn_id, EMAIL_TEMPLATE_EXT),
        "headline_metric": email.headline_metric,
        "monitor_url": email.monitor_url,
        "text_part": with_text,
    }


def failure_callback_config(email: EmailNotification) -> dict[str, Any]:
    """dag-factory callback spec: FailureNotifier (the provider's SmtpNotifier) as every task's on_failure_callback."""
    return {
        "callback": SMTP_NOTIFIER,
        "to": recipients(email),
        "subject": FAILURE_SUBJECT,
        "smtp_conn_id": literal(email.conn_id, EMAIL_TEMPLATE_EXT),
    }
