"""start_Flask_API's decision: reuse a healthy monitor already on the port, refuse a port held by another program, else serve here."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

import requests

from adclick_ops import jsonio
from adclick_ops.config.models import Monitor
from adclick_ops.config.vocabulary import ENV_AIRFLOW_URL, ENV_MONITOR_HOST, ENV_MONITOR_PORT
from adclick_ops.monitor.server import MonitorPortError, monitor_url, serve, url_host
from adclick_ops.monitor.views import SERVICE_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Probe:
    kind: str  # "free" (nothing listens), "ours" (a healthy adclick monitor), "other"
    detail: str = ""


def probe(host: str, port: int, timeout: float = 5.0) -> Probe:
    """What answers on host:port: nothing, our healthy monitor, or some other program."""
    target = url_host(host, connect=True)
    try:
        socket.create_connection((target.strip("[]"), port), timeout=timeout).close()
    except ConnectionRefusedError:
        return Probe("free")
    except OSError as exc:
        return Probe("other", f"connecting failed: {exc.strerror or exc}")
    try:
        response = requests.get(f"http://{target}:{port}/health", timeout=timeout)
    except requests.RequestException as exc:
        return Probe("other", f"GET /health failed: {type(exc).__name__}")
    try:
        body = jsonio.loads(response.content[: 64 * 1024 + 1], max_bytes=64 * 1024)
    except ValueError:
        body = None
    if (
        response.status_code == 200
        and isinstance(body, dict)
        and body.get("status") in ("ok", "degraded")
        and body.get("service") == SERVICE_NAME
    ):
        return Probe("ours")
    return Probe("other", f"GET /health answered HTTP {response.status_code}, not an adclick monitor")


def ensure_monitor(monitor: Monitor) -> str:
    """Make sure the monitor answers where `monitor` (the YAML section) says; return its URL.

    ADCLICK_MONITOR_HOST, ADCLICK_MONITOR_PORT and ADCLICK_AIRFLOW_URL override the section.
    """
    host = os.environ.get(ENV_MONITOR_HOST) or monitor.host
    raw_port = os.environ.get(ENV_MONITOR_PORT) or monitor.port
    try:
        port = int(raw_port)
    except (TypeError, ValueError):
        raise ValueError(f"monitor port must be an integer, got {raw_port!r} (monitor.port or {ENV_MONITOR_PORT})") from None
    airflow_url = os.environ.get(ENV_AIRFLOW_URL) or monitor.airflow_url
    url = monitor_url(host, port)

    found = probe(host, port)
    if found.kind == "ours":
        log.info("the adclick monitor already answers at %s; nothing to start", url)
        return url
    if found.kind == "other":
        raise MonitorPortError(
            f"{host}:{port} is held by another program, not the adclick monitor ({found.detail}); "
            f"stop that program or choose another port (monitor.port in the YAML, or {ENV_MONITOR_PORT})"
        )
    # In-process and without fork: the task runner's signals stop it, and serve_for can end it.
    return serve(host, port, airflow_url, monitor.dag_id, server="waitress", serve_for=monitor.serve_for)
