"""ReportEmailOperator: the SMTP provider's EmailOperator, sending HTML with a plain-text part.

The provider's operator sends HTML only; mail clients and filters that read text need both. The
connection (host, port, TLS, login) is the provider's SmtpHook, from the Airflow connection.
"""

from __future__ import annotations

import smtplib
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from typing import Any

from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.operators.smtp import EmailOperator


class SmtpDeliveryError(RuntimeError):
    """The report could not be handed to the SMTP server; says which server and why."""


class ReportEmailOperator(EmailOperator):
    template_fields = (*EmailOperator.template_fields, "text_content")

    def __init__(self, *, text_content: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text_content = text_content

    def execute(self, context: Any) -> list[str]:
        recipients = [self.to] if isinstance(self.to, str) else list(self.to)
        hook = SmtpHook(smtp_conn_id=self.conn_id)
        conn = hook.get_connection(self.conn_id)
        where = f"{conn.host}:{conn.port} (connection {self.conn_id!r})"
        try:
            with hook:
                sender = self.from_email or hook.from_email
                if not sender:
                    raise SmtpDeliveryError(f"no sender: set from_email in the extra of connection {self.conn_id!r}")
                message = MIMEMultipart("alternative")
                message["Subject"] = self.subject or ""
                message["From"] = sender
                message["To"] = ", ".join(recipients)
                message["Date"] = formatdate(localtime=False)
                message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
                message.attach(MIMEText(self.text_content or "", "plain", "utf-8"))
                message.attach(MIMEText(self.html_content or "", "html", "utf-8"))
                hook._smtp_client.sendmail(sender, recipients, message.as_string())  # the hook's logged-in client
        except SmtpDeliveryError:
            raise
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise SmtpDeliveryError(f"cannot send the report through the SMTP server at {where}: {cause}") from exc
        except Exception as exc:
            if "connect" in str(exc).lower():
                raise SmtpDeliveryError(f"cannot send the report through the SMTP server at {where}: {exc}") from exc
            raise
        self.log.info("report sent to %s through %s", ", ".join(recipients), where)
        return recipients
