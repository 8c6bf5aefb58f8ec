"""The README's run command for real: Airflow's scheduler, dag-processor, api-server and triggerer,
the triggered monitor DAG, and the monitor reading the real Airflow REST API."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from helpers import free_port

pytestmark = pytest.mark.airflow


def wait_for_line(proc: subprocess.Popen, lines: list[str], pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"{pattern!r} not seen; output:\n{''.join(lines)[-6000:]}")


def test_run_command_trains_triggers_the_monitor_dag_and_serves_the_monitor(tmp_path, pipelines):
    api_port, monitor_port = free_port(), free_port()
    env = {
        **os.environ,
        "ADCLICK_OPS_PIPELINES": str(pipelines),
        "ADCLICK_OPS_HOME": str(pipelines.parent),
        "ADCLICK_MONITOR_PORT": str(monitor_port),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "adclick_ops.cli", "run", "--airflow-home", str(tmp_path / "airflow"), "--port", str(api_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        wait_for_line(proc, lines, r"Everything keeps running", timeout=600)
        out = "".join(lines)
        run_id = re.search(r"Triggered Airflow_Lab2: (\S+)", out).group(1)
        assert f"Airflow_Lab2 run {run_id}: success" in out
        accuracy = float(re.search(r"metrics: accuracy=([0-9.]+)", out).group(1))
        assert accuracy >= 0.95
        assert re.search(r"Airflow_Lab2_Flask: run \S+ success", out), out
        assert re.search(r"e-mail:  .*\.eml", out)
        assert (tmp_path / "model" / "model.sav").exists()

        # the monitor started by the run command reads the real Airflow REST API
        base = f"http://127.0.0.1:{monitor_port}"
        health = requests.get(f"{base}/health", timeout=10).json()
        assert health["status"] == "ok"
        home = requests.get(f"{base}/", allow_redirects=False, timeout=10)
        assert home.status_code == 302 and home.headers["Location"].endswith("/success")
        page = requests.get(f"{base}/success", timeout=10).text
        assert run_id in page
        assert f"{accuracy:.4f}"[:5] in page  # e.g. 0.970
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            proc.stdout.close()
    assert proc.returncode == 0, "".join(lines)[-3000:]
    # every component was stopped
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "airflow")], capture_output=True, text=True).stdout.split()
    assert leftovers == [] or all(not os.path.exists(f"/proc/{p}") for p in leftovers)


def run_once(pipelines, home) -> subprocess.CompletedProcess:
    """`adclick-ops run --once` on the test's pipelines, in its own Airflow home."""
    env = {**os.environ, "ADCLICK_OPS_PIPELINES": str(pipelines), "ADCLICK_OPS_HOME": str(pipelines.parent)}
    argv = [sys.executable, "-m", "adclick_ops.cli", "run", "--once", "--airflow-home", str(home)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


def test_run_once_is_the_headless_form(tmp_path, pipelines):
    result = run_once(pipelines, tmp_path / "airflow")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Airflow_Lab2: run success" in result.stdout
    assert float(re.search(r"metrics: accuracy=([0-9.]+)", result.stdout).group(1)) >= 0.95
    assert re.search(r"e-mail:  .*/mail/.*\.eml", result.stdout)


def test_run_once_exits_1_when_a_task_fails(tmp_path, pipelines):
    from helpers import edit_yaml

    edit_yaml(
        pipelines / "airflow_lab2.yaml",
        lambda d: (
            d["Airflow_Lab2"]["training"].update(dataset=str(tmp_path / "gone.csv")),
            d["Airflow_Lab2"]["default_args"].update(retries=0),
        ),
    )
    result = run_once(pipelines, tmp_path / "airflow")
    assert result.returncode == 1
    assert "load_data_task" in result.stdout and "failed" in result.stdout
