"""E-mail content: the run report sent by `send_email` and the failure alert.

Both are Airflow templates, rendered by Airflow at run time with the task's context, and sent
through the SMTP provider (EmailOperator and SmtpNotifier, as adclick_ops.operators extends them) with
the connection named in the YAML. Each is HTML with inline styles only (tables, no <style> block,
no image, no script: what Gmail, Outlook and Apple Mail show alike), in the monitor's colours, and a
plain-text part that says the same.

No pipeline text is template source here: the subject goes through `as_template` (its
placeholders, the rest literal), recipients, connection ids and links through `literal`, and
every value the HTML shows is HTML-escaped (`| e`, `html.escape`). The values the report shows come
from the metrics XCom of `load_model_task`; each is checked for its type before it is formatted, so
a missing or odd value shows as `n/a` and never fails the e-mail.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from adclick_ops.config.models import EmailNotification
from adclick_ops.config.templating import PLACEHOLDERS, as_template, literal
from adclick_ops.config.vocabulary import AIRFLOW_URL, METRIC_LABELS, METRICS_TASK_ID, XCOM_FAILURE_KEY

SMTP_NOTIFIER = "adclick_ops.operators.FailureNotifier"  # the provider's SmtpNotifier, rendered afresh each time
# The template extensions of the operators that send mail (EmailOperator.template_ext): a field
# ending with one is read as a template file's name (tests/test_notify.py keeps this in step).
EMAIL_TEMPLATE_EXT = (".html",)
# The context entry FailureNotifier fills with the facts of a failure (see failure_facts).
FAILURE_CONTEXT_KEY = "adclick_failure"

# The monitor's palette (adclick_ops/monitor/static/monitor.css).
OK, BAD, WAIT, INK, MUTED, LINE, PAGE, BAR = "#1a7f37", "#cf222e", "#9a6700", "#1f2328", "#656d76", "#d0d7de", "#f6f8fa", "#24292f"
FONT = "system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
MONO = "ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"


def airflow_ui_url() -> str:
    """Base URL of the Airflow UI for links in e-mails: Airflow's [api] base_url."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback=None) or AIRFLOW_URL).rstrip("/")


# --- Jinja pieces of the report ---------------------------------------------------------------------


def _num(expr: str) -> str:
    """Jinja test: `expr` is a finite number, not a boolean (the only values the report formats)."""
    return f"({expr} is number and {expr} is not boolean and -1e300 < {expr} < 1e300)"


def _fmt(expr: str, spec: str = "%.4f") -> str:
    """Jinja expression: `expr` formatted with `spec`, or 'n/a'."""
    return f"('{spec}' % {expr} if {_num(expr)} else 'n/a')"


PULL = f"ti.xcom_pull(task_ids='{METRICS_TASK_ID}')"

# Everything the report shows, worked out once at its top: the run's record `m` (a mapping, maybe empty;
# adclick_ops.record.TrainingRecord), the previous champion's metrics `p` on the held-out rows (a mapping
# or none), this run's metrics `c` on the same rows, the status, and the run time so far.
PRELUDE = (
    f"{{% set m = {PULL} %}}"
    "{% set m = m if m is mapping else {} %}"
    "{% set p = m.get('previous_champion_metrics') %}"
    "{% set p = p if p is mapping else none %}"
    # this run's metrics on the held-out rows the champion was scored on (records before them: the test set's)
    "{% set c = m.get('holdout_metrics') %}"
    "{% set c = c if c is mapping else m %}"
    "{% set first = p is none and 'previous_champion_version' in m and m.get('previous_champion_version') is none %}"
    "{% set ok = m | length > 0 %}"
    "{% set version = m.get('model_version') %}"
    "{% set promoted = m.get('promoted') is sameas true %}"
    # an identical retrain of the champion is recorded against it: that version serves, though nothing was promoted
    "{% set serving = promoted or (version is not none and m.get('champion_version') == version) %}"
    "{% set colour = ('__OK__' if promoted else '__WAIT__') if ok and version is not none else ('__OK__' if ok else '__BAD__') %}"
    # the run time so far: from the run's start to the start of this task
    "{% set t0 = dag_run.start_date if dag_run is defined else none %}"
    "{% set t1 = ti.start_date %}"
    "{% set secs = (t1 - t0).total_seconds() if (t0 is defined and t1 is defined and t0 is not none and t1 is not none"
    " and t0.tzinfo is defined and t1.tzinfo is defined and t0.tzinfo is not none and t1.tzinfo is not none) else none %}"
    "{% set s = secs | round | int if secs is number and secs >= 0 else none %}"
    "{% set took = 'n/a' if s is none else (s ~ ' s' if s < 60 else ((s // 60) ~ ' min ' ~ (s % 60) ~ ' s' if s < 3600"
    " else (s // 3600) ~ ' h ' ~ ((s % 3600) // 60) ~ ' min')) %}"
    "{% set cm = m.get('confusion_matrix') %}"
    "{% set cm_ok = cm is sequence and cm is not string and cm is not mapping and cm | length == 2"
    " and cm[0] is sequence and cm[0] is not string and cm[0] is not mapping and cm[0] | length == 2"
    " and cm[1] is sequence and cm[1] is not string and cm[1] is not mapping and cm[1] | length == 2 %}"
    "{% set scalers = m.get('scalers') %}"
    "{% set scalers = scalers | join(', ') if scalers is sequence and scalers is not string and scalers is not mapping"
    " else scalers %}"
)


def _prelude(headline: str) -> str:
    return (
        PRELUDE.replace("__OK__", OK).replace("__WAIT__", WAIT).replace("__BAD__", BAD)
        + f"{{% set hv = m.get('{headline}') %}}"
        + f"{{% set headline = '{METRIC_LABELS[headline]}' %}}"  # type: ignore[index]
    )


def _delta(name: str) -> tuple[str, str]:
    """Jinja (condition, expression) of a metric's change against the previous champion."""
    now, before = f"c.get('{name}')", f"p.get('{name}')"
    return f"(p is not none and {_num(now)} and {_num(before)})", f"('%+.4f' % ({now} - {before}))"


def _delta_colour(name: str) -> str:
    now, before = f"c.get('{name}')", f"p.get('{name}')"
    return f"('{OK}' if {now} > {before} else ('{BAD}' if {now} < {before} else '{MUTED}'))"


# --- the run report: HTML -------------------------------------------------------------------------

TD = f"padding:6px 12px 6px 0;border-bottom:1px solid {LINE};vertical-align:top;"
TH = f"{TD}text-align:left;color:{MUTED};font-weight:500;"
NUM = f"{TD}font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap;"
H2 = f"margin:0 0 8px;font-size:17px;line-height:1.3;color:{INK};"
SECTION = "padding:16px 24px;"
CELL = f"border:1px solid {LINE};padding:8px 14px;font-variant-numeric:tabular-nums;font-weight:600;"
LINK = "color:#0969da;text-decoration:underline;"
BUTTON = f"display:inline-block;padding:8px 14px;border:1px solid {LINE};border-radius:6px;background:{PAGE};color:#0969da;text-decoration:none;font-weight:600;"


def _metric_rows_html() -> str:
    rows = []
    for name, label in METRIC_LABELS.items():
        cond, delta = _delta(name)
        rows.append(
            f'<tr><th scope="row" style="{TH}">{label}</th>'
            f'<td style="{NUM}">{{{{ {_fmt(f"m.get({name!r})")} }}}}</td>'
            "{% if p is not none %}"
            f'<td style="{NUM}">{{{{ {_fmt(f"c.get({name!r})")} }}}}</td>'
            f'<td style="{NUM}color:{MUTED};">{{{{ {_fmt(f"p.get({name!r})")} }}}}</td>'
            f'<td style="{NUM}color:{{{{ {_delta_colour(name)} if {cond} else "{MUTED}" }}}};">'
            f"{{{{ {delta} if {cond} else 'n/a' }}}}</td>"
            "{% endif %}</tr>"
        )
    return "".join(rows)


def _shell_open(title: str, dag_id: str) -> str:
    """The start of both e-mails (template text): document head, page background, the card and the
    monitor's header bar. `title` and `dag_id` are template expressions, already escaped."""
    return (
        "<!DOCTYPE html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head>"
        f'<body style="margin:0;padding:0;background:{PAGE};">'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background:{PAGE};">'
        '<tr><td align="center" style="padding:24px 12px;">'
        '<table role="presentation" width="640" cellpadding="0" cellspacing="0" border="0" '
        f'style="width:100%;max-width:640px;background:#ffffff;border:1px solid {LINE};border-radius:6px;border-collapse:separate;'
        f'font-family:{FONT};font-size:15px;line-height:1.5;color:{INK};">'
        # header bar, as the monitor's
        f'<tr><td style="background:{BAR};color:#ffffff;padding:12px 24px;border-radius:6px 6px 0 0;">'
        '<span style="font-weight:600;">adclick-ops</span>'
        f'&nbsp;&nbsp;<span style="color:{LINE};">{dag_id}</span></td></tr>'
    )


REPORT_HTML_BODY = (
    _shell_open("{{ dag.dag_id | e }}: {{ 'succeeded' if ok else 'incomplete' }}", "{{ dag.dag_id | e }}")
    # status banner with the headline metric
    + f'<tr><td id="status" style="{SECTION}border-left:6px solid {{{{ colour }}}};">'
    '<h1 style="margin:0 0 4px;font-size:22px;line-height:1.3;">'
    '{% if ok %}Run <span style="color:{{ colour }};">succeeded</span>'
    '{% else %}Run <span style="color:{{ colour }};">incomplete</span>: no metrics{% endif %}</h1>'
    "{% if ok %}"
    f'<p style="margin:0;"><span id="headline" style="font-size:32px;font-weight:700;font-variant-numeric:tabular-nums;">'
    f'{{{{ {_fmt("hv")} }}}}</span>&nbsp; <span style="color:{MUTED};">{{{{ headline }}}}</span>'
    '{% if version is not none %}&nbsp;&nbsp;<span style="display:inline-block;padding:2px 10px;border-radius:12px;'
    'border:1px solid {{ colour }};color:{{ colour }};font-weight:600;">'
    "v{{ version | e }} {{ 'champion' if serving else 'not promoted' }}</span>{% endif %}</p>"
    "{% else %}"
    f'<p style="margin:0;color:{MUTED};">{METRICS_TASK_ID} returned no metrics to this task; see the run in Airflow.</p>'
    "{% endif %}"
    "</td></tr>"
    # promotion decision
    "{% if version is not none %}"
    f'<tr><td style="{SECTION}"><h2 style="{H2}">Promotion</h2>'
    '<p style="margin:0 0 6px;">Trained version <b>{{ version | e }}</b>: '
    "{% if promoted %}it is the champion now"
    '{% else %}kept, <b style="color:' + WAIT + ';">not promoted</b>; the champion stays version '
    "{{ m.get('champion_version') | e }}{% endif %}.</p>"
    "{% if m.get('decision') %}<p style=\"margin:0;color:" + MUTED + ";\">{{ m.get('decision') | e }}</p>{% endif %}"
    "</td></tr>"
    "{% endif %}"
    # metrics, with the change against the previous champion
    "{% if ok %}"
    f'<tr><td style="{SECTION}"><h2 style="{H2}">Metrics on the test set</h2>'
    '<table id="metrics" role="presentation" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;">'
    "{% if p is not none %}"
    f'<tr><th style="{TH}"></th><th style="{TH}">this run, test set</th><th style="{TH}">this run, held-out rows</th>'
    f'<th style="{TH}">previous champion, same rows</th><th style="{TH}">change</th></tr>'
    "{% endif %}" + _metric_rows_html() + f'<tr><th scope="row" style="{TH}">Test rows</th>'
    f"<td style=\"{NUM}\">{{{{ m.get('n_test') | e if m.get('n_test') is not none else 'n/a' }}}}</td></tr>"
    "</table>"
    "{% if first %}"
    f'<p style="margin:8px 0 0;color:{MUTED};">First version: no champion before it to compare with.</p>'
    "{% elif p is not none and m.get('previous_champion_version') is not none %}"
    f"<p style=\"margin:8px 0 0;color:{MUTED};\">Change against version {{{{ m.get('previous_champion_version') | e }}}}, "
    "the champion before this run, both scored on the same {{ m.get('holdout_rows') | e }} held-out rows, which neither trained on.</p>"
    "{% endif %}"
    "</td></tr>"
    "{% endif %}"
    # confusion matrix
    "{% if cm_ok %}"
    f'<tr><td style="{SECTION}"><h2 style="{H2}">Confusion matrix (test set)</h2>'
    '<table id="confusion" role="presentation" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;">'
    f'<tr><td style="padding:6px 14px 6px 0;"></td><th style="padding:6px 14px;color:{MUTED};font-weight:500;">predicted 0</th>'
    f'<th style="padding:6px 14px;color:{MUTED};font-weight:500;">predicted 1</th></tr>'
    f'<tr><th style="padding:6px 14px 6px 0;color:{MUTED};font-weight:500;text-align:left;">actual 0</th>'
    f'<td style="{CELL}background:#eef7ee;">{{{{ cm[0][0] | e }}}} <small style="color:{MUTED};font-weight:400;">TN</small></td>'
    f'<td style="{CELL}background:#fff5f5;">{{{{ cm[0][1] | e }}}} <small style="color:{MUTED};font-weight:400;">FP</small></td></tr>'
    f'<tr><th style="padding:6px 14px 6px 0;color:{MUTED};font-weight:500;text-align:left;">actual 1</th>'
    f'<td style="{CELL}background:#fff5f5;">{{{{ cm[1][0] | e }}}} <small style="color:{MUTED};font-weight:400;">FN</small></td>'
    f'<td style="{CELL}background:#eef7ee;">{{{{ cm[1][1] | e }}}} <small style="color:{MUTED};font-weight:400;">TP</small></td></tr>'
    "</table></td></tr>"
    "{% endif %}"
    # facts of the run
    f'<tr><td style="{SECTION}"><h2 style="{H2}">Run</h2>'
    '<table id="facts" role="presentation" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;">'
    f'<tr><th scope="row" style="{TH}">Run id</th><td style="{TD}"><code style="font-family:{MONO};font-size:13px;'
    'word-break:break-all;">{{ run_id | e }}</code></td></tr>'
    f'<tr><th scope="row" style="{TH}">Date</th><td style="{TD}">'
    "{{ (dag_run.logical_date or dag_run.run_after) | e }}</td></tr>"
    f'<tr><th scope="row" style="{TH}">Run time so far</th><td id="duration" style="{TD}">{{{{ took }}}}'
    f' <span style="color:{MUTED};">(from the start of the run to this e-mail)</span></td></tr>'
    "{% if m.get('estimator') %}"
    f'<tr><th scope="row" style="{TH}">Model</th><td style="{TD}">{{{{ m.get(\'estimator\') | e }}}}'
    "{% if scalers is not none %}, scalers: {{ scalers | e if scalers else 'none' }}{% endif %}</td></tr>"
    "{% endif %}"
    f'<tr><th scope="row" style="{TH}">Champion model file</th><td style="{TD}"><code style="font-family:{MONO};'
    "font-size:13px;word-break:break-all;\">{{ m.get('model_path') | e if m.get('model_path') else 'n/a' }}</code></td></tr>"
    "</table></td></tr>"
    # links
    f'<tr><td style="{SECTION}padding-bottom:24px;">'
    f'<a href="__AIRFLOW__/dags/{{{{ dag.dag_id | urlencode | e }}}}/runs/{{{{ run_id | urlencode | e }}}}" style="{BUTTON}">'
    "This run in Airflow</a>&nbsp;&nbsp;"
    f'<a href="__MONITOR__" style="{BUTTON}">Monitor</a></td></tr>'
    "</table>"
    f'<p style="margin:12px 0 0;font-family:{FONT};font-size:12px;color:{MUTED};">'
    "Sent by the task {{ ti.task_id | e }} of {{ dag.dag_id | e }}.</p>"
    "</td></tr></table></body></html>"
)

# --- the run report: plain text -------------------------------------------------------------------


def _metric_rows_text() -> str:
    rows = []
    for name, label in METRIC_LABELS.items():
        cond, delta = _delta(name)
        rows.append(
            f"{label:<11}{{{{ '%-10s' % {_fmt(f'm.get({name!r})')} }}}}"
            f"{{% if p is not none %}}{{{{ '%-10s' % {_fmt(f'c.get({name!r})')} }}}}{{{{ '%-20s' % {_fmt(f'p.get({name!r})')} }}}}"
            f"{{{{ {delta} if {cond} else 'n/a' }}}}{{% endif %}}\n"
        )
    return "".join(rows)


REPORT_TEXT_BODY = (
    "{% if ok %}{{ dag.dag_id }} succeeded: "
    f"{{{{ headline }}}} {{{{ {_fmt('hv')} }}}}"
    "{% if version is not none %}, v{{ version }} {{ 'champion' if serving else 'not promoted' }}{% endif %}\n"
    f"{{% else %}}{{{{ dag.dag_id }}}} incomplete: {METRICS_TASK_ID} returned no metrics to this task\n{{% endif %}}"
    "\n"
    "{% if version is not none %}PROMOTION\n"
    "Trained version {{ version }}: "
    "{% if promoted %}it is the champion now{% else %}kept, NOT promoted; the champion stays version {{ m.get('champion_version') }}"
    "{% endif %}.\n"
    "{% if m.get('decision') %}{{ m.get('decision') }}\n{% endif %}\n{% endif %}"
    "{% if ok %}METRICS ON THE TEST SET\n"
    "{% if p is not none %}"
    + f"{'':<11}{'test set':<10}{'held-out':<10}{'previous champion':<20}change\n"
    + "{% endif %}"
    + _metric_rows_text()
    + "test rows  {{ m.get('n_test') if m.get('n_test') is not none else 'n/a' }}\n"
    "{% if first %}First version: no champion before it to compare with.\n"
    "{% elif p is not none and m.get('previous_champion_version') is not none %}"
    "Change against version {{ m.get('previous_champion_version') }}, the champion before this run, both scored on the same "
    "{{ m.get('holdout_rows') }} held-out rows, which neither trained on.\n{% endif %}"
    "\n{% endif %}"
    "{% if cm_ok %}CONFUSION MATRIX (test set)\n"
    "              predicted 0   predicted 1\n"
    "actual 0      {{ '%-14s' % ('%s TN' % (cm[0][0],)) }}{{ cm[0][1] }} FP\n"
    "actual 1      {{ '%-14s' % ('%s FN' % (cm[1][0],)) }}{{ cm[1][1] }} TP\n\n"
    "{% endif %}"
    "RUN\n"
    "Run id:              {{ run_id }}\n"
    "Date:                {{ dag_run.logical_date or dag_run.run_after }}\n"
    "Run time so far:     {{ took }} (from the start of the run to this e-mail)\n"
    "{% if m.get('estimator') %}Model:               {{ m.get('estimator') }}"
    "{% if scalers is not none %}, scalers: {{ scalers if scalers else 'none' }}{% endif %}\n{% endif %}"
    "Champion model file: {{ m.get('model_path') if m.get('model_path') else 'n/a' }}\n\n"
    "This run in Airflow: __AIRFLOW__/dags/{{ dag.dag_id }}/runs/{{ run_id | urlencode }}\n"
    "Monitor: __MONITOR__\n"
)

DEFAULT_HEADLINE = "accuracy"
REPORT_HTML = _prelude(DEFAULT_HEADLINE) + REPORT_HTML_BODY
REPORT_TEXT = _prelude(DEFAULT_HEADLINE) + REPORT_TEXT_BODY


def subject_placeholders(headline: str) -> dict[str, str]:
    """Each placeholder of the report's subject and the Jinja source Airflow renders for it.

    The shared ones (PLACEHOLDERS) and the report's own: {{ status }}, {{ metric }}, {{ version }},
    each self-contained (a subject may hold any of them, in any order, or none).
    """
    pull = f"{{% with m = {PULL} %}}{{% with m = m if m is mapping else {{}} %}}"
    end = "{% endwith %}{% endwith %}"
    return {
        **PLACEHOLDERS,
        "status": pull + "{{ 'succeeded' if m | length > 0 else 'incomplete' }}" + end,
        "metric": pull + f"{{% with v = m.get('{headline}') %}}{headline} {{{{ {_fmt('v', '%.3f')} }}}}{{% endwith %}}" + end,
        "version": pull + "{% if m.get('model_version') is not none %}v{{ m.get('model_version') }} "
        "{{ 'champion' if m.get('promoted') is sameas true or m.get('champion_version') == m.get('model_version') else 'not promoted' }}"
        "{% else %}no version{% endif %}" + end,
    }


# --- the failure alert ----------------------------------------------------------------------------

FAILURE_SUBJECT = f"{{{{ {FAILURE_CONTEXT_KEY}.subject }}}}"

FAILURE_HTML = (
    f"{{% set f = {FAILURE_CONTEXT_KEY} %}}"
    + _shell_open("{{ f.subject | e }}", "{{ f.dag_id | e }}")
    + f'<tr><td id="status" style="{SECTION}border-left:6px solid {BAD};">'
    '<h1 style="margin:0 0 4px;font-size:22px;line-height:1.3;">'
    f'Task <code style="font-family:{MONO};">{{{{ f.task_id | e }}}}</code> <span style="color:{BAD};">failed</span></h1>'
    f'<p style="margin:0;color:{MUTED};">Try {{{{ f.try_number | e }}}} of {{{{ f.tries | e }}}}. {{{{ f.retry_note | e }}}}</p>'
    "</td></tr>"
    f'<tr><td style="{SECTION}"><h2 style="{H2}">Error</h2>'
    f'<pre id="error" style="margin:0;padding:10px 12px;background:{PAGE};border:1px solid {LINE};border-radius:6px;'
    f'font-family:{MONO};font-size:13px;white-space:pre-wrap;word-break:break-word;">{{{{ f.error | e }}}}</pre>'
    "{% if f.kind %}"
    f'<p style="margin:8px 0 0;color:{MUTED};">Kind: {{{{ f.kind | e }}}}'
    "{% if f.retryable is not none %} ({{ 'a retry may fix it' if f.retryable else 'a retry does not fix it' }}){% endif %}</p>"
    "{% endif %}"
    "</td></tr>"
    f'<tr><td style="{SECTION}"><h2 style="{H2}">Run</h2>'
    '<table role="presentation" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;">'
    f'<tr><th scope="row" style="{TH}">DAG</th><td style="{TD}">{{{{ f.dag_id | e }}}}</td></tr>'
    f'<tr><th scope="row" style="{TH}">Run id</th><td style="{TD}"><code style="font-family:{MONO};font-size:13px;'
    'word-break:break-all;">{{ f.run_id | e }}</code></td></tr>'
    f'<tr><th scope="row" style="{TH}">Task</th><td style="{TD}">{{{{ f.task_id | e }}}}</td></tr>'
    "</table></td></tr>"
    f'<tr><td style="{SECTION}padding-bottom:24px;">'
    f'<a id="log" href="{{{{ f.log_url | e }}}}" style="{BUTTON}">Log of this try</a>&nbsp;&nbsp;'
    f'<a href="{{{{ f.run_url | e }}}}" style="{BUTTON}">This run in Airflow</a></td></tr>'
    "</table></td></tr></table></body></html>"
)

FAILURE_TEXT = (
    f"{{% set f = {FAILURE_CONTEXT_KEY} %}}"
    "{{ f.dag_id }}: task {{ f.task_id }} failed\n\n"
    "Try {{ f.try_number }} of {{ f.tries }}. {{ f.retry_note }}\n\n"
    "ERROR\n{{ f.error }}\n"
    "{% if f.kind %}Kind: {{ f.kind }}"
    "{% if f.retryable is not none %} ({{ 'a retry may fix it' if f.retryable else 'a retry does not fix it' }}){% endif %}\n{% endif %}"
    "\n"
    "Run id: {{ f.run_id }}\n"
    "Log of this try: {{ f.log_url }}\n"
    "This run in Airflow: {{ f.run_url }}\n"
)

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


def failure_facts(context: Mapping[str, Any], airflow_url: str) -> dict[str, Any]:
    """What the failure alert says, from the failing task's context (and its `failure` XCom when there is one).

    Never raises on an odd context: a value it cannot read is left out or shown as '?'.
    """
    ti = context.get("ti")
    task = context.get("task")
    dag = context.get("dag")
    dag_id = str(getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or "?")
    task_id = str(getattr(ti, "task_id", None) or getattr(task, "task_id", None) or "?")
    run_id = str(context.get("run_id") or getattr(ti, "run_id", None) or "?")
    record: dict[str, Any] = {}
    try:
        pulled = ti.xcom_pull(task_ids=task_id, key=XCOM_FAILURE_KEY) if ti is not None else None
        record = pulled if isinstance(pulled, dict) else {}
    except Exception:  # no XCom backend here (a callback outside a worker), or none pushed
        record = {}
    try_number = _int(getattr(ti, "try_number", None)) or _int(record.get("try_number"))
    max_tries = _int(getattr(ti, "max_tries", None))
    retries = _int(getattr(task, "retries", None))
    tries = max_tries + 1 if max_tries is not None else (retries + 1 if retries is not None else None)
    if try_number is not None and tries is not None and tries < try_number:
        tries = try_number
    error = first_line(context.get("exception")) or first_line(record.get("error")) or "(no error message: see the log)"
    kind = record.get("kind") if record.get("kind") in FAILURE_KINDS else None
    retryable = record.get("retryable") if isinstance(record.get("retryable"), bool) else None
    if try_number is not None and tries is not None and try_number < tries:
        retry_note = "Not retried: Airflow does not retry this kind of error."
    else:
        retry_note = "No retry is left."
    base = airflow_url.rstrip("/")
    run_url = f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    log_url = f"{run_url}/tasks/{quote(task_id, safe='')}" + (f"?try_number={try_number}" if try_number else "")
    shown_try = f"try {try_number if try_number is not None else '?'} of {tries if tries is not None else '?'}"
    return {
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": try_number if try_number is not None else "?",
        "tries": tries if tries is not None else "?",
        "error": error,
        "kind": kind,
        "retryable": retryable,
        "retry_note": retry_note,
        "log_url": log_url,
        "run_url": run_url,
        "subject": f"[adclick-ops] {dag_id} failed: {task_id} ({shown_try})",
    }


# --- the arguments the factory hands to the operators ---------------------------------------------


def _links(template: str, email: EmailNotification, html_escape: bool) -> str:
    """The report with its two links filled in, each as literal text (HTML-escaped in the HTML part)."""

    def link(url: str) -> str:
        return literal(html.escape(url, quote=True) if html_escape else url)

    return template.replace("__AIRFLOW__", link(airflow_ui_url())).replace("__MONITOR__", link(email.monitor_url))


def recipients(email: EmailNotification) -> list[str]:
    return [literal(address, EMAIL_TEMPLATE_EXT) for address in email.to]


def email_operator_args(email: EmailNotification, with_text: bool) -> dict[str, Any]:
    """Arguments of the e-mail task that sends the run report."""
    prelude = _prelude(email.headline_metric)
    args = {
        "to": recipients(email),
        "subject": as_template(email.subject, EMAIL_TEMPLATE_EXT, subject_placeholders(email.headline_metric)),
        "html_content": _links(prelude + REPORT_HTML_BODY, email, html_escape=True),
        "conn_id": literal(email.conn_id, EMAIL_TEMPLATE_EXT),
    }
    if with_text:
        args["text_content"] = _links(prelude + REPORT_TEXT_BODY, email, html_escape=False)
    return args


def failure_callback_config(email: EmailNotification) -> dict[str, Any]:
    """dag-factory callback spec: FailureNotifier (the provider's SmtpNotifier) as every task's on_failure_callback."""
    return {
        "callback": SMTP_NOTIFIER,
        "to": recipients(email),
        "subject": FAILURE_SUBJECT,
        "html_content": FAILURE_HTML,
        "text_content": FAILURE_TEXT,
        "smtp_conn_id": literal(email.conn_id, EMAIL_TEMPLATE_EXT),
    }
