"""adclick_ops.operators: one multipart/alternative message (text, then HTML) through the connection's SMTP server.

The rendering of the report and of the failure alert is in test_notify.py; here is the delivery.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest

from adclick_ops.operators import SmtpDeliveryError, deliver, one_line

from tests.support import free_port, mail_sink_for

LOG = logging.getLogger("test_operators")


@pytest.fixture
def sink(monkeypatch):
    with mail_sink_for("smtp_test", monkeypatch) as server:
        yield server


def parts(message) -> list[tuple[str, str]]:
    return [(p.get_content_type(), p.get_payload(decode=True).decode(p.get_content_charset())) for p in message.get_payload()]


@pytest.mark.parametrize("subject,line", [("a\r\nBcc: x@example.org", "a Bcc: x@example.org"), (None, ""), ("  \tpadded\x7f ", "padded")])
def test_a_subject_is_one_header_line(subject, line):
    assert one_line(subject) == line


def test_a_message_goes_to_every_recipient_with_text_before_html(sink):
    sent = deliver("report", "smtp_test", None, ["a@example.org", "b@example.org"], "run\nok", "<p>é</p>", "é", LOG)
    assert sent == ["a@example.org", "b@example.org"]
    [(recipients, message)] = sink.messages
    assert recipients == ["a@example.org", "b@example.org"]
    assert message.get_content_type() == "multipart/alternative"
    assert (message["Subject"], message["From"], message["To"]) == ("run ok", "adclick-ops@localhost", "a@example.org, b@example.org")
    assert message["Message-ID"].endswith("@localhost>") and message["Date"]
    assert parts(message) == [("text/plain", "é"), ("text/html", "<p>é</p>")]


def test_one_recipient_as_text_and_an_explicit_sender(sink):
    assert deliver("failure alert", "smtp_test", "ops@example.org", "a@example.org", "s", None, None, LOG) == ["a@example.org"]
    [(_, message)] = sink.messages
    assert message["From"] == "ops@example.org"
    assert parts(message) == [("text/plain", ""), ("text/html", "")]


def test_a_server_that_does_not_answer_is_named_with_the_cause(monkeypatch):
    port = free_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_TEST",
        f"smtp://127.0.0.1:{port}/?{urlencode({'from_email': 'a@localhost', 'disable_tls': 'true', 'disable_ssl': 'true', 'timeout': 5})}",
    )
    with pytest.raises(SmtpDeliveryError) as raised:
        deliver("report", "smtp_test", None, "a@example.org", "s", "h", "t", LOG)
    text = str(raised.value)
    assert text.startswith(
        f"cannot send the report through the SMTP server at 127.0.0.1:{port} (connection 'smtp_test'): ConnectionRefusedError"
    )


def test_without_a_sender_nothing_is_sent(monkeypatch, sink):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", f"smtp://127.0.0.1:{sink.port}/?disable_tls=true&disable_ssl=true")
    with pytest.raises(SmtpDeliveryError, match="no sender: set from_email in the extra of connection 'smtp_test'"):
        deliver("report", "smtp_test", None, "a@example.org", "s", "h", "t", LOG)
    assert sink.messages == []


def test_an_unknown_tls_setting_is_refused_before_connecting(monkeypatch, sink):
    extra = {"from_email": "a@localhost", "disable_ssl": "true", "ssl_context": "lenient"}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", f"smtp://127.0.0.1:{sink.port}/?{urlencode(extra)}")
    with pytest.raises(SmtpDeliveryError, match="connection 'smtp_test': extra ssl_context is 'lenient'; expected 'default' or 'none'"):
        deliver("report", "smtp_test", None, "a@example.org", "s", "h", "t", LOG)
    assert sink.messages == []
