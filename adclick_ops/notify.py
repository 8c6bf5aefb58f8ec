"""E-mail content: the run report sent by `send_email` and the failure alert.

Both are Airflow templates, rendered by Airflow at run time with the task's context, and sent
through the SMTP provider (EmailOperator and SmtpNotifier, as adclick_ops.operators extends them) with
the connection named in the YAML.
No pipeline text is template source here: the subject goes through `as_template` (its
placeholders, the rest literal), recipients, connection ids and links through `literal`, and
every value the HTML shows is HTML-escaped (`| e`, `html.escape`).
"""

from __future__ import annotations

import html
from typing import Any

from adclick_ops.config.models import EmailNotification
from adclick_ops.config.templating import as_template, literal
from adclick_ops.config.vocabulary import AIRFLOW_URL, METRIC_LABELS, METRICS_TASK_ID

SMTP_NOTIFIER = "adclick_ops.operators.FailureNotifier"  # the provider's SmtpNotifier, rendered afresh each time
# The template extensions of the operators that send mail (EmailOperator.template_ext): a field
# ending with one is read as a template file's name (tests/test_notify.py keeps this in step).
EMAIL_TEMPLATE_EXT = (".html",)


def airflow_ui_url() -> str:
    """Base URL of the Airflow UI for links in e-mails: Airflow's [api] base_url."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback=None) or AIRFLOW_URL).rstrip("/")


REPORT_HTML = (
    f"{{% set m = ti.xcom_pull(task_ids='{METRICS_TASK_ID}') or {{}} %}}"
    "<html><body>"
    "<h2>{{ dag.dag_id | e }}: model trained</h2>"
    "<p>Run <code>{{ run_id | e }}</code>, started for {{ (dag_run.logical_date or dag_run.run_after) | e }}.</p>"
    "<table border='1' cellpadding='4' cellspacing='0'>"
    + "".join(
        f"<tr><th align='left'>{label}</th><td>{{{{ '%.4f' % m.{name} if m.get('{name}') is number else 'n/a' }}}}</td></tr>"
        for name, label in METRIC_LABELS.items()
    )
    + "<tr><th align='left'>test rows</th><td>{{ m.get('n_test') | e }}</td></tr>"
    "</table>"
    # which version this run trained and whether it became the champion
    "{% if m.get('model_version') %}<p>Trained version <b>{{ m.model_version | e }}</b>: "
    "{% if m.promoted %}it is the champion now{% else %}kept, <b>not promoted</b>; the champion stays version "
    "{{ m.champion_version | e }}{% endif %}.<br>{{ m.decision | e }}</p>{% endif %}"
    "<p>Champion model file: <code>{{ m.get('model_path') | e }}</code>.</p>"
    '<p><a href="__AIRFLOW__/dags/{{ dag.dag_id | urlencode | e }}/runs/{{ run_id | urlencode | e }}">This run in Airflow</a> · '
    '<a href="__MONITOR__">Monitor</a></p>'
    "</body></html>"
)

REPORT_TEXT = (
    f"{{% set m = ti.xcom_pull(task_ids='{METRICS_TASK_ID}') or {{}} %}}"
    "{{ dag.dag_id }}: model trained\n\n"
    "Run:          {{ run_id }}\n"
    "Date:         {{ dag_run.logical_date or dag_run.run_after }}\n\n"
    + "".join(f"{label:<11}{{{{ '%.4f' % m.{name} if m.get('{name}') is number else 'n/a' }}}}\n" for name, label in METRIC_LABELS.items())
    + "test rows  {{ m.get('n_test') }}\n\n"
    "{% if m.get('model_version') %}Trained version {{ m.model_version }}: "
    "{% if m.promoted %}it is the champion now{% else %}kept, NOT promoted; the champion stays version {{ m.champion_version }}{% endif %}.\n"
    "{{ m.decision }}\n\n{% endif %}"
    "Champion model file: {{ m.get('model_path') }}\n"
    "This run in Airflow: __AIRFLOW__/dags/{{ dag.dag_id }}/runs/{{ run_id | urlencode }}\n"
    "Monitor: __MONITOR__\n"
)

FAILURE_HTML = (
    "<html><body>"
    "<h2>{{ dag.dag_id | e }}: task {{ ti.task_id | e }} failed</h2>"
    "<p>Run <code>{{ run_id | e }}</code>, try {{ ti.try_number | e }}.</p>"
    "<pre>{{ exception | default('(see the log)', true) | e }}</pre>"
    '<p><a href="{{ ti.log_url | e }}">Log of the task</a></p>'
    "</body></html>"
)


def _links(template: str, email: EmailNotification, html_escape: bool) -> str:
    """The report with its two links filled in, each as literal text (HTML-escaped in the HTML part)."""

    def link(url: str) -> str:
        return literal(html.escape(url, quote=True) if html_escape else url)

    return template.replace("__AIRFLOW__", link(airflow_ui_url())).replace("__MONITOR__", link(email.monitor_url))


def recipients(email: EmailNotification) -> list[str]:
    return [literal(address, EMAIL_TEMPLATE_EXT) for address in email.to]


def email_operator_args(email: EmailNotification, with_text: bool) -> dict[str, Any]:
    """Arguments of the e-mail task that sends the run report."""
    args = {
        "to": recipients(email),
        "subject": as_template(email.subject, EMAIL_TEMPLATE_EXT),
        "html_content": _links(REPORT_HTML, email, html_escape=True),
        "conn_id": literal(email.conn_id, EMAIL_TEMPLATE_EXT),
    }
    if with_text:
        args["text_content"] = _links(REPORT_TEXT, email, html_escape=False)
    return args


def failure_callback_config(email: EmailNotification) -> dict[str, Any]:
    """dag-factory callback spec: FailureNotifier (the provider's SmtpNotifier) as every task's on_failure_callback."""
    return {
        "callback": SMTP_NOTIFIER,
        "to": recipients(email),
        "subject": "[adclick-ops] FAILED {{ dag.dag_id }}.{{ ti.task_id }} run {{ run_id }}",
        "html_content": FAILURE_HTML,
        "smtp_conn_id": literal(email.conn_id, EMAIL_TEMPLATE_EXT),
    }
