"""ReportEmailOperator: the SMTP provider's EmailOperator, sending HTML with a plain-text part; and
FailureNotifier, the provider's SmtpNotifier rendering its templates afresh for each failure.

The provider's operator sends HTML only; mail clients and filters that read text need both. The
server, port, TLS and login come from the Airflow connection through SmtpHook's public properties;
the message is a multipart/alternative built here and handed to the standard library's client.
"""

from __future__ import annotations

import copy
import smtplib
import ssl
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from typing import Any

from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.providers.smtp.operators.smtp import EmailOperator


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


class ReportEmailOperator(EmailOperator):
    template_fields = (*EmailOperator.template_fields, "text_content")

    def __init__(self, *, text_content: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text_content = text_content

    def execute(self, context: Any) -> list[str]:
        recipients = [self.to] if isinstance(self.to, str) else list(self.to)
        hook = SmtpHook(smtp_conn_id=self.conn_id)
        hook.smtp_connection = hook.get_connection(self.conn_id)
        where = f"{hook.host}:{hook.port} (connection {self.conn_id!r})"
        sender = self.from_email or hook.from_email
        if not sender:
            raise SmtpDeliveryError(f"no sender: set from_email in the extra of connection {self.conn_id!r}")
        if hook.auth_type == "oauth2":
            # The provider alone speaks XOAUTH2: hand it the HTML report, without the text part.
            with hook:
                hook.send_email_smtp(to=recipients, subject=self.subject, html_content=self.html_content, from_email=sender)
            return recipients
        message = MIMEMultipart("alternative")
        message["Subject"] = self.subject or ""
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
        message.attach(MIMEText(self.text_content or "", "plain", "utf-8"))
        message.attach(MIMEText(self.html_content or "", "html", "utf-8"))
        try:
            _send(hook, sender, recipients, message)
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise SmtpDeliveryError(f"cannot send the report through the SMTP server at {where}: {cause}") from exc
        self.log.info("report sent to %s through %s", ", ".join(recipients), where)
        return recipients


class FailureNotifier(SmtpNotifier):
    """SmtpNotifier that renders its templates from their sources at every failure.

    One notifier serves every task of a DAG (default_args), and the provider's notifier renders
    its fields in place: the second failure in one process (`airflow dags test`, the DAG
    processor's callbacks) would render the first one's rendered e-mail again, as a template, with
    whatever text the first failure put there (an exception quoting a data value, say).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sources = {name: copy.deepcopy(getattr(self, name)) for name in self.template_fields}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        for name, source in self._sources.items():
            setattr(self, name, copy.deepcopy(source))
        super().render_template_fields(context, jinja_env)
