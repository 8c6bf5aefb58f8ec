"""A local SMTP server that keeps every message: as an .eml file for `adclick-ops run`, in memory for the tests."""

from __future__ import annotations

import email
import time
from email.message import Message
from pathlib import Path
from urllib.parse import urlencode

from aiosmtpd.controller import Controller

from adclick_ops.net import LOOPBACK, free_port


def smtp_connection_uri(host: str, port: int, from_email: str = "adclick-ops@localhost", timeout: int = 10) -> str:
    """An Airflow SMTP connection in URI form, plain SMTP without TLS, as a local test server speaks it.

    The URI form, not JSON: Airflow 3.3 reads a JSON connection through a deprecated path and says so
    in every task log.
    """
    extra = {"from_email": from_email, "disable_tls": "true", "disable_ssl": "true", "timeout": timeout, "retry_limit": 1}
    return f"smtp://{host}:{port}/?{urlencode(extra)}"


class _Keep:
    def __init__(self, folder: Path | None):
        self.folder = folder
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        content = envelope.original_content or envelope.content
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(content)))
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S")
            (self.folder / f"{stamp}-{len(list(self.folder.glob('*.eml'))) + 1:04d}.eml").write_bytes(content)
        return "250 Message accepted for delivery"


class MailSink:
    """aiosmtpd on loopback; `messages` holds (recipients, message) pairs, `folder` (if any) one .eml file each.

    `connection_env()` points Airflow's SMTP connection at it.
    """

    def __init__(self, folder: Path | None = None, port: int = 0, host: str = LOOPBACK):
        self.folder = folder
        self.host = host
        self._handler = _Keep(folder)
        self.controller = Controller(self._handler, hostname=host, port=port or free_port(host))

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def messages(self) -> list[tuple[list[str], Message]]:
        return self._handler.messages

    def __enter__(self) -> MailSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def connection_env(self, conn_id: str = "smtp_default") -> dict[str, str]:
        return {f"AIRFLOW_CONN_{conn_id.upper()}": smtp_connection_uri(self.host, self.port)}
