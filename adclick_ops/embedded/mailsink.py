"""A local SMTP server that keeps every message: as an .eml file for `adclick-ops run`, in memory for the tests."""

from __future__ import annotations

import email
import json
import time
from email.message import Message
from pathlib import Path

from aiosmtpd.controller import Controller

from adclick_ops.net import LOOPBACK, free_port


def smtp_connection_json(host: str, port: int, timeout: int = 10) -> str:
    """An Airflow SMTP connection (AIRFLOW_CONN_<ID>) to a plain server without TLS or login."""
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": host,
            "port": port,
            "extra": {
                "from_email": "adclick-ops@localhost",
                "disable_tls": True,
                "disable_ssl": True,
                "timeout": timeout,
                "retry_limit": 1,
            },
        }
    )


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
        return {f"AIRFLOW_CONN_{conn_id.upper()}": smtp_connection_json(self.host, self.port)}
