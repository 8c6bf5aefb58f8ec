"""Test helpers that are not fixtures (import them from here, never from a conftest.py)."""

from __future__ import annotations

import email
import json
import os
import socket
import subprocess
from email.message import Message
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller

PROJECT = Path(__file__).resolve().parents[1]


def edit_yaml(path: Path, change) -> None:
    """Load a YAML file, let `change` edit the data in place, write it back."""
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run_airflow(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    from adclick_ops.runtime import airflow

    return airflow(args, env, capture_output=True, text=True, timeout=timeout)


def mandatory_in_ci(reason: str) -> None:
    """Skip with `reason` on a box without the dependency; fail instead when CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


class _Keep:
    def __init__(self):
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.original_content or envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpCapture:
    """aiosmtpd on a free loopback port; `.messages` holds (recipients, message) pairs."""

    def __init__(self):
        self.handler = _Keep()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=free_port())

    @property
    def messages(self):
        return self.handler.messages

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    def connection_env(self, conn_id: str = "smtp_default") -> dict[str, str]:
        return {f"AIRFLOW_CONN_{conn_id.upper()}": connection_json("127.0.0.1", self.controller.port)}


def connection_json(host: str, port: int) -> str:
    from adclick_ops.mailsink import smtp_connection_uri

    return smtp_connection_uri(host, port, timeout=5)


def body_text(message: Message) -> str:
    """All text parts of a message, decoded."""
    parts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8"))
    return "\n".join(parts)
