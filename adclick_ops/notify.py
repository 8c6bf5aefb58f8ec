"""E-mail content: the run report sent by `send_email` and the failure alert.

Both are Airflow templates, rendered by Airflow at run time with the task's context, and sent
through the SMTP provider (EmailOperator and SmtpNotifier) with the connection named in the YAML.
"""

from __future__ import annotations

from typing import Any

from adclick_ops.config.models import EmailNotification
from adclick_ops.config.vocabulary import AIRFLOW_URL, METRIC_LABELS, METRICS_TASK_ID

SMTP_NOTIFIER = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"


def airflow_ui_url() -> str:
    """Base URL of the Airflow UI for links in e-mails: Airflow's [api] base_url."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback=None) or AIRFLOW_URL).rstrip("/")


REPORT_HTML = (
    f"{{% set m = ti.xcom_pull(task_ids='{METRICS_TASK_ID}') or {{}} %}}"
    "<html><body>"
    "<h2>{{ dag.dag_id }}: model trained</h2>"
    "<p>Run <code>{{ run_id }}</code>, started for {{ dag_run.logical_date or dag_run.run_after }}.</p>"
    "<table border='1' cellpadding='4' cellspacing='0'>"
    + "".join(
        f"<tr><th align='left'>{label}</th><td>{{{{ '%.4f' % m.{name} if m.get('{name}') is number else 'n/a' }}}}</td></tr>"
        for name, label in METRIC_LABELS.items()
    )
    + "<tr><th align='left'>test rows</th><td>{{ m.get('n_test') }}</td></tr>"
    "</table>"
    # which version this run trained and whether it became the champion
    "{% if m.get('model_version') %}<p>Trained version <b>{{ m.model_version }}</b>: "
    "{% if m.promoted %}it is the champion now{% else %}kept, <b>not promoted</b>; the champion stays version "
    "{{ m.champion_version }}{% endif %}.<br>{{ m.decision }}</p>{% endif %}"
    "<p>Champion model file: <code>{{ m.get('model_path') }}</code>.</p>"
    '<p><a href="__AIRFLOW__/dags/{{ dag.dag_id }}/runs/{{ run_id | urlencode }}">This run in Airflow</a> · '
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
    "<h2>{{ dag.dag_id }}: task {{ ti.task_id }} failed</h2>"
    "<p>Run <code>{{ run_id }}</code>, try {{ ti.try_number }}.</p>"
    "<pre>{{ exception | default('(see the log)', true) }}</pre>"
    '<p><a href="{{ ti.log_url }}">Log of the task</a></p>'
    "</body></html>"
)


def _links(template: str, email: EmailNotification) -> str:
    return template.replace("__AIRFLOW__", airflow_ui_url()).replace("__MONITOR__", email.monitor_url)


def email_operator_args(email: EmailNotification, with_text: bool) -> dict[str, Any]:
    """Arguments of the e-mail task that sends the run report."""
    args = {"to": list(email.to), "subject": email.subject, "html_content": _links(REPORT_HTML, email), "conn_id": email.conn_id}
    if with_text:
        args["text_content"] = _links(REPORT_TEXT, email)
    return args


def failure_callback_config(email: EmailNotification) -> dict[str, Any]:
    """dag-factory callback spec: SmtpNotifier as every task's on_failure_callback."""
    return {
        "callback": SMTP_NOTIFIER,
        "to": list(email.to),
        "subject": "[adclick-ops] FAILED {{ dag.dag_id }}.{{ ti.task_id }} run {{ run_id }}",
        "html_content": FAILURE_HTML,
        "smtp_conn_id": email.conn_id,
    }
