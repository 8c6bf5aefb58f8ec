"""ReportEmailOperator: the SMTP provider's EmailOperator, sending HTML with a plain-text part; and
FailureNotifier, the provider's SmtpNotifier rendering its templates afresh for each failure, with a
plain-text part too.

The provider's operator and notifier send HTML only; mail clients and filters that read text need both. The
server, port, TLS and login come from the Airflow connection through SmtpHook's public properties;
the message is a multipart/alternative built here and handed to the standard library's client.
"""

from __future__ import annotations

import copy
import re
import smtplib
import ssl
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from typing import Any

from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.providers.smtp.operators.smtp import EmailOperator

from adclick_ops.config.vocabulary import AIRFLOW_URL, MONITOR_URL


class SmtpDeliveryError(RuntimeError):
    """The report could not be handed to the SMTP server; says which server and why."""


def _tls_context(hook: SmtpHook) -> ssl.SSLContext | None:
    """The connection's `ssl_context` extra, as the provider reads it: unset/"default" verifies, "none" does not."""
    if hook.ssl_context not in (None, "default", "none"):
        raise SmtpDeliveryError(
            f"connection {hook.smtp_conn_id!r}: extra ssl_context is {hook.ssl_context!r}; expected 'default' or 'none'"
        )
    return None if hook.ssl_context == "none" else ssl.create_default_context()


def _send(hook: SmtpHook, sender: str, recipients: list[str], message: MIMEMultipart) -> None:
    """One SMTP session: connect, STARTTLS or SSL as configured, log in when a login is set, send, quit."""
    context = _tls_context(hook)
    kwargs: dict[str, Any] = {"host": hook.host, "timeout": hook.timeout}
    if hook.port:
        kwargs["port"] = hook.port
    client: smtplib.SMTP = smtplib.SMTP_SSL(context=context, **kwargs) if hook.use_ssl else smtplib.SMTP(**kwargs)
    with client:
        if not hook.use_ssl and hook.smtp_starttls:
            client.starttls(context=context)
            client.ehlo()
        if hook.smtp_user and hook.smtp_password:
            client.login(hook.smtp_user, hook.smtp_password)
        client.sendmail(sender, recipients, message.as_string())


def one_line(subject: str | None) -> str:
    """A subject as one header line: control characters (a newline in a value would start a new header) become spaces."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", subject or "").strip()


def deliver(
    what: str, conn_id: str, from_email: str | None, to: str | list[str], subject: str | None, html: str | None, text: str | None, log: Any
) -> list[str]:
    """Send one multipart/alternative message (text, then HTML) through the SMTP server of connection `conn_id`."""
    recipients = [to] if isinstance(to, str) else list(to)
    hook = SmtpHook(smtp_conn_id=conn_id)
    hook.smtp_connection = hook.get_connection(conn_id)
    where = f"{hook.host}:{hook.port} (connection {conn_id!r})"
    sender = from_email or hook.from_email
    if not sender:
        raise SmtpDeliveryError(f"no sender: set from_email in the extra of connection {conn_id!r}")
    message = MIMEMultipart("alternative")
    message["Subject"] = one_line(subject)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    message.attach(MIMEText(text or "", "plain", "utf-8"))
    message.attach(MIMEText(html or "", "html", "utf-8"))
    try:
        _send(hook, sender, recipients, message)
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise SmtpDeliveryError(f"cannot send the {what} through the SMTP server at {where}: {cause}") from exc
    log.info("%s %r sent to %s through %s", what, message["Subject"], ", ".join(recipients), where)
    return recipients


def _uses_oauth2(conn_id: str) -> bool:
    hook = SmtpHook(smtp_conn_id=conn_id)
    hook.smtp_connection = hook.get_connection(conn_id)
    return hook.auth_type == "oauth2"


class ReportEmailOperator(EmailOperator):
    """The run report: EmailOperator whose bodies are adclick_ops.notify's template files, rendered at run time.

    Airflow renders the fields it renders for any EmailOperator (recipients, subject, connection); then the
    facts of the run (adclick_ops.notify.report_facts: the run's TrainingRecord, validated, the run time,
    the links) fill the HTML and text templates. The subject's report placeholders read the same facts.
    `text_part=False` sends the HTML alone, through the provider's EmailOperator as it is.
    """

    def __init__(
        self,
        *,
        headline_metric: str = "accuracy",
        monitor_url: str = MONITOR_URL,
        text_part: bool = True,
        html_content: str = "",
        text_content: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(html_content=html_content, **kwargs)
        self.headline_metric, self.monitor_url, self.text_part = headline_metric, monitor_url, text_part
        self.text_content = text_content

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        from adclick_ops import notify

        facts = notify.report_facts(context, self.headline_metric, self.monitor_url, _airflow_url())
        enriched = dict(context)
        enriched[notify.REPORT_CONTEXT_KEY] = notify.subject_facts(facts, self.headline_metric)
        super().render_template_fields(enriched, jinja_env)
        self.html_content = notify.render("report.html", facts)
        self.text_content = notify.render("report.txt", facts) if self.text_part else ""

    def execute(self, context: Any) -> list[str]:
        recipients = [self.to] if isinstance(self.to, str) else list(self.to)
        if not self.text_part:
            super().execute(context)
            return recipients
        if _uses_oauth2(self.conn_id):
            # The provider alone speaks XOAUTH2: hand it the HTML report, without the text part.
            hook = SmtpHook(smtp_conn_id=self.conn_id)
            with hook:
                sender = self.from_email or hook.from_email
                hook.send_email_smtp(to=recipients, subject=one_line(self.subject), html_content=self.html_content, from_email=sender)
            return recipients
        return deliver("report", self.conn_id, self.from_email, recipients, self.subject, self.html_content, self.text_content, self.log)


def _airflow_url() -> str:
    from adclick_ops.notify import airflow_ui_url

    try:
        return airflow_ui_url()
    except Exception:  # no Airflow configuration to read: the default address
        return AIRFLOW_URL


class FailureNotifier(SmtpNotifier):
    """SmtpNotifier that renders its templates from their sources at every failure, and sends a plain-text part too.

    One notifier serves every task of a DAG (default_args), and the provider's notifier renders
    its fields in place: the second failure in one process (`airflow dags test`, the DAG
    processor's callbacks) would render the first one's rendered e-mail again, as a template, with
    whatever text the first failure put there (an exception quoting a data value, say).

    The facts of the failure (adclick_ops.notify.failure_facts: task, try, first line of the
    error, log link) are worked out here, in Python: the subject reads them from one context entry,
    and they fill the bodies' template files (adclick_ops.notify), which only show them, escaped.
    """

    template_fields = (*SmtpNotifier.template_fields, "text_content")

    def __init__(self, *, html_content: str = "", text_content: str = "", **kwargs: Any) -> None:
        self.text_content = text_content
        super().__init__(html_content=html_content, **kwargs)
        self._sources = {name: copy.deepcopy(getattr(self, name)) for name in self.template_fields}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        from adclick_ops import notify

        for name, source in self._sources.items():
            setattr(self, name, copy.deepcopy(source))
        facts = notify.failure_facts(context, _airflow_url())
        enriched = dict(context)
        enriched[notify.FAILURE_CONTEXT_KEY] = facts
        super().render_template_fields(enriched, jinja_env)
        self.html_content = notify.render("failure.html", {"f": facts})
        self.text_content = notify.render("failure.txt", {"f": facts})

    def notify(self, context: Any) -> None:
        if self.auth_type == "oauth2" or _uses_oauth2(self.smtp_conn_id):
            self.subject = one_line(self.subject)
            super().notify(context)
            return
        deliver("failure alert", self.smtp_conn_id, self.from_email, self.to, self.subject, self.html_content, self.text_content, self.log)
