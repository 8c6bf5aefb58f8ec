"""adclick_ops.monitor.ensure: what start_Flask_API decides, on free loopback ports."""

from __future__ import annotations

import logging
import threading

import pytest
import requests

from adclick_ops.config.models import Monitor
from adclick_ops.monitor.ensure import ensure_monitor, probe
from adclick_ops.monitor.server import MonitorPortError

from tests.support import free_port, wait_for_health


def settings(port, airflow_url="http://127.0.0.1:9", serve_for=None) -> Monitor:
    return Monitor(host="127.0.0.1", port=port, airflow_url=airflow_url, dag_id="Airflow_Lab2", serve_for=serve_for)


def test_returns_at_once_when_a_healthy_monitor_answers(live_monitor, caplog):
    caplog.set_level(logging.INFO, logger="adclick_ops.monitor.ensure")
    # Had it tried to serve, binding the busy port would have raised.
    assert ensure_monitor(settings(live_monitor.port)) == f"http://127.0.0.1:{live_monitor.port}"
    assert f"already answers at http://127.0.0.1:{live_monitor.port}" in caplog.text
    assert requests.get(live_monitor.url + "/health", timeout=5).json()["service"] == "adclick-monitor"


def test_environment_overrides_the_yaml_port(live_monitor, monkeypatch, other_program):
    monkeypatch.setenv("ADCLICK_MONITOR_PORT", str(live_monitor.port))
    assert ensure_monitor(settings(other_program)) == f"http://127.0.0.1:{live_monitor.port}"


def test_fails_clearly_when_another_program_holds_the_port(other_program):
    with pytest.raises(MonitorPortError) as raised:
        ensure_monitor(settings(other_program))
    message = str(raised.value)
    assert f"127.0.0.1:{other_program} is held by another program, not the adclick monitor" in message
    assert "ADCLICK_MONITOR_PORT" in message


def test_serves_for_the_given_time_then_returns(airflow):
    port = free_port()
    result = {}
    task = threading.Thread(target=lambda: result.setdefault("url", ensure_monitor(settings(port, airflow.url, serve_for=2))))
    task.start()
    health = wait_for_health(port)
    assert health["status"] == "ok" and health["airflow"]["reachable"] is True
    assert probe("127.0.0.1", port).kind == "ours"
    task.join(timeout=30)
    assert not task.is_alive()
    assert result["url"] == f"http://127.0.0.1:{port}"
    assert probe("127.0.0.1", port).kind == "free"  # the port is released


def test_probe_tells_the_three_cases_apart(live_monitor, other_program):
    assert probe("127.0.0.1", live_monitor.port).kind == "ours"
    assert probe("127.0.0.1", other_program).kind == "other"
    assert probe("127.0.0.1", free_port()).kind == "free"
