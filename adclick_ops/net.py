"""Local ports: one that is free now, and whether a given one is."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on at this moment (another program may take it before the caller does)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bind_error(port: int, host: str = LOOPBACK) -> OSError | None:
    """Why `port` cannot be bound on `host` now, or None when it can."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        # A port in TIME_WAIT after a clean stop is free for a server that sets SO_REUSEADDR too.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc
    return None


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    return bind_error(port, host) is None
