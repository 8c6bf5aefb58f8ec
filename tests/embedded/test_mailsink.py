"""adclick_ops.embedded.mailsink: the local SMTP server keeps each message, in memory and as an .eml file."""

from __future__ import annotations

import email
import smtplib
from email.message import EmailMessage

from adclick_ops.embedded.mailsink import MailSink


def send(sink: MailSink, subject: str, to: list[str]) -> None:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = subject, "a@example.org", ", ".join(to)
    message.set_content("body")
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.send_message(message)


def test_messages_are_kept_in_memory_without_a_folder():
    with MailSink() as sink:
        send(sink, "one", ["x@example.org", "y@example.org"])
    ((recipients, message),) = sink.messages
    assert recipients == ["x@example.org", "y@example.org"] and message["Subject"] == "one"


def test_each_message_is_also_a_file_and_none_is_overwritten(tmp_path):
    (tmp_path / "20000101T000000-0001.eml").write_text("an earlier run's message")
    with MailSink(tmp_path) as sink:
        send(sink, "first", ["x@example.org"])
        send(sink, "second", ["x@example.org"])
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 3
    assert (tmp_path / "20000101T000000-0001.eml").read_text() == "an earlier run's message"
    assert {email.message_from_bytes(f.read_bytes())["Subject"] for f in files[1:]} == {"first", "second"}


def test_the_airflow_connection_points_at_the_sink():
    from urllib.parse import urlsplit

    with MailSink() as sink:
        ((name, value),) = sink.connection_env("smtp_alerts").items()
    uri = urlsplit(value)
    assert name == "AIRFLOW_CONN_SMTP_ALERTS" and (uri.scheme, uri.hostname, uri.port) == ("smtp", "127.0.0.1", sink.port)
