"""A local SMTP server that keeps every message as an .eml file: the e-mail of the embedded run."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

from aiosmtpd.controller import Controller


class _SaveToFolder:
    def __init__(self, folder: Path):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{len(list(self.folder.glob('*.eml'))) + 1:04d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class MailSink:
    """aiosmtpd on loopback; `connection_env()` points Airflow's SMTP connection at it."""

    def __init__(self, folder: Path, port: int = 0, host: str = "127.0.0.1"):
        self.folder = folder
        self.host = host
        self.controller = Controller(_SaveToFolder(folder), hostname=host, port=port or _free_port(host))

    @property
    def port(self) -> int:
        return self.controller.port

    def __enter__(self) -> MailSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def connection_env(self, conn_id: str = "smtp_default") -> dict[str, str]:
        return {f"AIRFLOW_CONN_{conn_id.upper()}": smtp_connection_uri(self.host, self.port)}


def smtp_connection_uri(host: str, port: int, from_email: str = "adclick-ops@localhost", timeout: int = 10) -> str:
    """An Airflow SMTP connection in URI form, plain SMTP without TLS, as a local test server speaks it.

    The URI form, not JSON: Airflow 3.3 reads a JSON connection through a deprecated path and says so
    in every task log.
    """
    extra = {"from_email": from_email, "disable_tls": "true", "disable_ssl": "true", "timeout": timeout, "retry_limit": 1}
    return f"smtp://{host}:{port}/?{urlencode(extra)}"


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
