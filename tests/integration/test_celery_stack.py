"""The compose topology without Docker: CeleryExecutor, PostgreSQL, Redis, five Airflow processes.

One test, end to end: a fresh PostgreSQL database, Redis as the broker, config/compose.env as the
Airflow settings (only paths, ports and host names overridden), api-server, scheduler,
dag-processor, triggerer and a Celery worker as subprocesses. Airflow_Lab2 is unpaused and
triggered through the REST API and must succeed; Airflow_Lab2_Flask must be triggered by it and
bring up the monitor, which must report that run as a success. Everything started is stopped and
the database dropped, also on failure; a failure prints the tail of every process's log.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from adclick_ops.embedded.mailsink import smtp_connection_uri

from tests.support import PROJECT, MailSink, edit_yaml, free_port, mandatory_in_ci

pytestmark = pytest.mark.integration

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis database of this test (0 is left to the compose stack and to other programs); the Celery
# queue name is unique per run as well, so two runs at once never take each other's tasks.
REDIS_DB = 13
PROTECTED_DATABASES = {"postgres", "test", "root", "template0", "template1"}
ADMIN = ("airflow", "airflow")

RUN_TIMEOUT = 8 * 60  # Airflow_Lab2, triggered to finished
STARTUP_TIMEOUT = 4 * 60  # processes up and both DAGs parsed
MONITOR_SERVE_FOR = 60  # seconds start_Flask_API serves the monitor before it succeeds


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return False
    return True


def _admin_connection():
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5)
    conn.autocommit = True
    return conn


@pytest.fixture
def database():
    """A PostgreSQL database of this test only, dropped afterwards."""
    if not _reachable(PG_HOST, PG_PORT):
        mandatory_in_ci(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    name = f"adclick_it_{uuid.uuid4().hex[:12]}"
    assert name not in PROTECTED_DATABASES
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with conn.cursor() as cur:
            # WITH (FORCE): a process that outlived its stop must not keep the database alive.
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture
def celery_queue():
    """A Celery queue name of this test on REDIS_DB; its keys are deleted afterwards."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        mandatory_in_ci(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}")
    queue = f"adclick_it_{uuid.uuid4().hex[:12]}"
    yield queue
    for key in client.scan_iter(match=f"*{queue}*"):
        client.delete(key)
    client.close()


def compose_settings() -> dict[str, str]:
    """config/compose.env as a dict: the Airflow settings every container of the stack reads."""
    settings = {}
    for raw in (PROJECT / "config" / "compose.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key] = value
    return settings


def stack_env(home: Path, pipelines: Path, database: str, queue: str, smtp_port: int, ports: dict[str, int]) -> dict[str, str]:
    """The compose stack's environment with this machine's paths, ports and host names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ADCLICK_"))}
    env.update(compose_settings())
    api = f"http://127.0.0.1:{ports['api']}"
    pg = f"postgres@{PG_HOST}:{PG_PORT}/{database}"
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
            # as in docker-compose.yaml's x-airflow-common
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW_CONN_SMTP_DEFAULT": smtp_connection_uri("127.0.0.1", smtp_port, from_email="adclick-ops@example.com"),
            # paths and ports of this machine instead of the containers'
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(ports["api"]),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{ports['api']}",
            "AIRFLOW__API__WORKERS": "1",  # two cores here
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(ports["scheduler_health"]),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_logs"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["triggerer_logs"]),
            "ADCLICK_OPS_HOME": str(PROJECT),
            "ADCLICK_OPS_PIPELINES": str(pipelines),
            # what start_Flask_API serves, and with which credentials the monitor reads Airflow
            "ADCLICK_MONITOR_HOST": "127.0.0.1",
            "ADCLICK_MONITOR_PORT": str(ports["monitor"]),
            "ADCLICK_AIRFLOW_URL": api,
            "ADCLICK_AIRFLOW_USER": ADMIN[0],
            "ADCLICK_AIRFLOW_PASSWORD": ADMIN[1],
            "ADCLICK_MONITOR_CACHE_TTL": "1",
        }
    )
    return env


class Api:
    """The Airflow REST API v2 with a token of the admin user."""

    def __init__(self, base: str):
        self.base = base
        self.session = requests.Session()

    def login(self) -> None:
        r = requests.post(f"{self.base}/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]}, timeout=30)
        assert r.status_code in (200, 201), f"POST /auth/token: HTTP {r.status_code} {r.text[:500]}"
        self.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.call(method, path, **kwargs)
        assert r.ok, f"{method} {path}: HTTP {r.status_code} {r.text[:1000]}"
        return r.json()


def wait_for(what: str, check: Callable[[], Any], timeout: float, stack, interval: float = 3) -> Any:
    """Call `check` until it returns something truthy; fail early if a process of the stack died."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        dead = stack.dead()
        assert not dead, f"while waiting for {what}: {', '.join(dead)} exited"
        try:
            result = check()
        except (requests.RequestException, AssertionError) as exc:
            last_error, result = exc, None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


def report(stack, home: Path, lines: int = 60) -> None:
    """The tail of every process log and of every task log, for a failed test's output."""
    for name in stack.processes:
        print(f"\n===== {name} (last {lines} lines) =====\n{stack.log_tail(name, lines)}")
    for log in sorted((home / "logs").glob("dag_id=*/**/*.log")):
        text = log.read_text(errors="replace").splitlines()
        print(f"\n===== task log {log.relative_to(home / 'logs')} =====\n" + "\n".join(text[-lines:]))


def task_states(api: Api, dag_id: str, run_id: str) -> dict[str, str]:
    tis = api.json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {ti["task_id"]: ti["state"] for ti in tis}


def run_finished(api: Api, dag_id: str, run_id: str) -> str | None:
    state = api.json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
    return state if state in ("success", "failed") else None


@pytest.mark.timeout(1800)
def test_airflow_lab2_on_celery_postgres_redis(tmp_path, pipelines, database, celery_queue):
    from adclick_ops.embedded.stack import Stack

    # The scheduled run that unpausing would add is left out, so that the run checked is ours.
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"].update(schedule=None))
    edit_yaml(pipelines / "airflow_lab2_flask.yaml", lambda d: d["Airflow_Lab2_Flask"]["monitor"].update(serve_for=MONITOR_SERVE_FOR))

    home = tmp_path / "airflow"
    home.mkdir()
    ports = {name: free_port() for name in ("api", "scheduler_health", "worker_logs", "triggerer_logs", "monitor")}
    with MailSink() as smtp:
        env = stack_env(home, pipelines, database, celery_queue, smtp.controller.port, ports)
        migrate = subprocess.run(["airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
        assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}"

        stack = Stack(env=env, home=home)
        # No --celery-hostname: with it, the provider inspects the workers over Redis before the
        # pool forks, and the forked pool processes hang on the inherited socket (celery#8874).
        worker_name = f"celery@{socket.gethostname()}"
        try:
            stack.start("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(ports["api"])])
            stack.start("scheduler", ["scheduler"])
            stack.start("dag-processor", ["dag-processor"])
            stack.start("triggerer", ["triggerer"])
            stack.start("celery-worker", ["celery", "worker", "--queues", celery_queue, "--concurrency", "2"])
            api = Api(f"http://127.0.0.1:{ports['api']}")
            check_run(stack, env, api=api, ports=ports, smtp=smtp, worker_name=worker_name)
            check_last_good_on_celery(stack, api, pipelines)
        except BaseException:
            report(stack, home)
            raise
        finally:
            stack.stop(timeout=30)


def check_run(stack, env: dict[str, str], api: Api, ports: dict[str, int], smtp: MailSink, worker_name: str) -> None:
    started = time.monotonic()
    wait_for("the api-server", lambda: api.call("GET", "/monitor/health").ok, STARTUP_TIMEOUT, stack)
    api.login()
    wait_for(
        "both DAGs to be parsed",
        lambda: all(api.call("GET", f"/dags/{dag_id}").ok for dag_id in ("Airflow_Lab2", "Airflow_Lab2_Flask")),
        STARTUP_TIMEOUT,
        stack,
    )
    print(f"stack up and DAGs parsed in {time.monotonic() - started:.0f} s")

    api.json("PATCH", "/dags/Airflow_Lab2", json={"is_paused": False})
    run_id = api.json("POST", "/dags/Airflow_Lab2/dagRuns", json={"logical_date": None})["dag_run_id"]
    triggered = time.monotonic()
    state = wait_for(f"run {run_id} of Airflow_Lab2 to finish", lambda: run_finished(api, "Airflow_Lab2", run_id), RUN_TIMEOUT, stack)
    states = task_states(api, "Airflow_Lab2", run_id)
    assert state == "success", f"Airflow_Lab2 run {run_id} ended {state}; tasks: {states}"
    assert set(states.values()) == {"success"}, states
    print(f"Airflow_Lab2 succeeded on Celery in {time.monotonic() - triggered:.0f} s")

    metrics = api.json("GET", f"/dags/Airflow_Lab2/dagRuns/{run_id}/taskInstances/load_model_task/xcomEntries/return_value")["value"]
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    assert metrics["accuracy"] >= 0.95, metrics
    assert any("ml-team@example.com" in rcpts for rcpts, _ in smtp.messages), "the run report was not e-mailed"

    # Airflow_Lab2_Flask was triggered by this run, and brought up the monitor, which sees the run.
    def flask_run_of_ours():
        runs = api.json("GET", "/dags/Airflow_Lab2_Flask/dagRuns")["dag_runs"]
        return next((r for r in runs if (r.get("conf") or {}).get("upstream_run_id") == run_id), None)

    flask_run = wait_for(f"a run of Airflow_Lab2_Flask triggered by {run_id}", flask_run_of_ours, 120, stack)
    monitor = f"http://127.0.0.1:{ports['monitor']}"

    def monitor_reports_success():
        body = requests.get(f"{monitor}/api/status", timeout=10).json()
        return body if body["case"] == "success" and body["run"]["run_id"] == run_id else None

    status = wait_for("the monitor to report the run as a success", monitor_reports_success, MONITOR_SERVE_FOR, stack, interval=2)
    assert status["run"]["metrics"]["accuracy"] >= 0.95, status
    flask_state = wait_for(
        "Airflow_Lab2_Flask to finish",
        lambda: run_finished(api, "Airflow_Lab2_Flask", flask_run["dag_run_id"]),
        MONITOR_SERVE_FOR + 120,
        stack,
    )
    assert flask_state == "success", task_states(api, "Airflow_Lab2_Flask", flask_run["dag_run_id"])

    # The health checks of docker-compose.yaml, run against the native processes.
    assert requests.get(f"http://127.0.0.1:{ports['scheduler_health']}/health", timeout=10).ok, "scheduler health check"
    ping = subprocess.run(
        ["celery", "--app", "airflow.providers.celery.executors.celery_executor.app", "inspect", "ping", "-d", worker_name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ping.returncode == 0, f"celery inspect ping failed:\n{ping.stdout[-2000:]}\n{ping.stderr[-2000:]}"
    for job in ("DagProcessorJob", "TriggererJob"):
        # like compose's health check, allow a few tries: a busy machine can delay one heartbeat
        for _ in range(5):
            check = subprocess.run(
                ["airflow", "jobs", "check", "--job-type", job, "--local"], env=env, capture_output=True, text=True, timeout=120
            )
            if check.returncode == 0:
                break
            time.sleep(5)
        assert check.returncode == 0, f"airflow jobs check {job}:\n{check.stdout[-2000:]}\n{check.stderr[-2000:]}"


def check_last_good_on_celery(stack, api: Api, pipelines: Path) -> None:
    """A pipeline file broken on the live stack: the DAG stays active and a triggered run succeeds on the Celery
    worker with the last valid settings (the worker parses the DAG file too, and reads the same snapshot)."""
    path = pipelines / "airflow_lab2.yaml"
    good = path.read_text()
    edit_yaml(path, lambda d: d["Airflow_Lab2"]["training"].update(scalers=["robust"], colour="blue"))

    def kept():
        dag = api.json("GET", "/dags/Airflow_Lab2/details")
        return dag if "last-good" in [t["name"] for t in dag["tags"]] else None

    dag = wait_for("Airflow_Lab2 to be rendered from its last valid version", kept, STARTUP_TIMEOUT, stack)
    assert dag["is_stale"] is False and dag["is_paused"] is False

    def filed():
        errors = api.json("GET", "/importErrors")["import_errors"]
        return next((e for e in errors if e["filename"].endswith("airflow_lab2.yaml")), None)

    error = wait_for("the pipeline file's import error", filed, STARTUP_TIMEOUT, stack, interval=2)
    assert "unknown field 'colour'" in error["stack_trace"] and "runs instead: Airflow_Lab2" in error["stack_trace"]

    run_id = api.json("POST", "/dags/Airflow_Lab2/dagRuns", json={"logical_date": None})["dag_run_id"]
    state = wait_for(f"run {run_id} on the last valid version", lambda: run_finished(api, "Airflow_Lab2", run_id), RUN_TIMEOUT, stack)
    assert state == "success", task_states(api, "Airflow_Lab2", run_id)
    metrics = api.json("GET", f"/dags/Airflow_Lab2/dagRuns/{run_id}/taskInstances/load_model_task/xcomEntries/return_value")["value"]
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    assert metrics["scalers"] == ["minmax", "standard"], metrics  # not the broken file's [robust]

    path.write_text(good)
    wait_for("the tag to go once the file is fixed", lambda: kept() is None, STARTUP_TIMEOUT, stack)
