"""`make compose-test`: start docker-compose.yaml for real on podman and prove the stack works.

Builds the stand-in base images of tests/compose/images/ (once; later runs reuse them), the project's
image with the unchanged Dockerfile, starts the unchanged docker-compose.yaml with two Celery
workers, triggers Airflow_Lab2 twice through the api-server's REST API and checks: every task ran
on a worker container and both workers ran tasks, each run's working files were found by the tasks
that needed them, the report reached mailpit, Airflow_Lab2_Flask ran, and the monitor container
answers /api/predict with the champion these runs trained. It ends with `docker-compose down -v`
and checks that no container, network, volume or process of the stack is left.

Exit status 0 when everything holds; 1 when a check fails (with each service's last log lines);
2 when podman or docker-compose is missing off CI (with how to install them).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import csv
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from adclick_ops.artifacts import safe_run_id

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
CONTAINERS_CONF = HERE / "containers.conf"
PROJECT_NAME = "adclick-ops-compose-test"
BASE_IMAGE = "localhost/adclick-ops-standin/debian:bookworm"
RECIPE_LABEL = "org.adclick-ops.standin-recipe"
# stand-in recipe folder -> the official name it is tagged with (docker-compose.yaml and the
# Dockerfile use these names unchanged)
STANDINS = {
    "airflow": "docker.io/apache/airflow:{airflow}-python3.11",
    "postgres": "docker.io/library/postgres:16",
    "redis": "docker.io/library/redis:7.2-bookworm",
    "mailpit": "docker.io/axllent/mailpit:v1.27",
}
DEBIAN_PACKAGES = [
    "podman",
    "runc",
    "uidmap",
    "slirp4netns",
    "fuse-overlayfs",
    "netavark",
    "aardvark-dns",
    "iptables",
    "docker-compose",
    "debootstrap",
]
# docker-compose.yaml's default name of the project's image
PROJECT_IMAGE = "adclick-ops-airflow:{airflow}"
WORKERS = 2
TRAINING_DAG = "Airflow_Lab2"
MONITOR_DAG = "Airflow_Lab2_Flask"
HEALTH_POLL = 5.0  # seconds between two checks of a starting container (each check a new process)
DEADLINE = 45 * 60  # the whole test, cold (image builds included)
UP_TIMEOUT = 12 * 60  # `docker-compose up` until every service is healthy
RUNS_TIMEOUT = 12 * 60  # both training runs and the monitor DAG's runs
LOG_LINES = 40


class Failure(Exception):
    """A check of the stack did not hold."""


def say(message: str) -> None:
    print(f"[compose-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True, quiet: bool = False, **kw
) -> subprocess.CompletedProcess:
    result = subprocess.run(args, env=env, timeout=timeout, text=True, capture_output=True, **kw)
    if check and result.returncode != 0:
        raise Failure(f"{' '.join(args[:6])} ... exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    if not quiet and result.returncode != 0:
        say(f"{' '.join(args[:4])} ... exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


# -- the engine -------------------------------------------------------------------------------


def ensure_tools() -> None:
    missing = [tool for tool in ("podman", "docker-compose", "runc") if shutil.which(tool) is None]
    if not missing:
        return
    install = f"apt-get update && apt-get install -y --no-install-recommends {' '.join(DEBIAN_PACKAGES)}"
    if os.environ.get("CI", "").lower() != "true":
        print(
            f"compose-test needs {', '.join(missing)}, which are not installed.\n"
            f"On Debian bookworm, as root:\n    {install}\n"
            "then run `make compose-test` again (as root: the stand-in images and the stack are rootful podman's).\n"
            "CI (CI=true) installs them itself.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    say(f"installing {' '.join(DEBIAN_PACKAGES)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env, timeout=600)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *DEBIAN_PACKAGES], env=env, timeout=900)


class PodmanService:
    """`podman system service` on a socket of our own: the Docker API that docker-compose drives."""

    def __init__(self, folder: Path):
        self.socket = folder / "podman.sock"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PodmanService:
        self.process = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
            env=engine_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(100):
            if self.process.poll() is not None:
                raise Failure(f"podman system service exited {self.process.returncode}")
            if self.socket.exists() and self._ping():
                return self
            time.sleep(0.2)
        raise Failure("podman system service did not answer on its socket in 20 s")

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(str(self.socket))
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b" 200 " in sock.recv(100)
        except OSError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class HealthChecks(threading.Thread):
    """Runs the health checks of the stack's running containers, as an engine with timers would.

    podman schedules health checks with systemd timers; without systemd they never run by
    themselves, so `depends_on: condition: service_healthy` would wait forever. Like Docker with a
    `start_interval`, a container in its start period that has not passed yet is checked every
    HEALTH_POLL seconds (failures there do not count, a success makes it healthy at once); after
    that, every `interval` of its health check, so `retries` keeps the meaning it has in production.
    Each container on its own: an Airflow CLI check takes 10 to 70 s here, a curl a fraction of
    one. A starting container whose check took longer than HEALTH_POLL waits as long as it took
    before the next: back-to-back Airflow imports would take the CPU from the components starting.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()

    def run(self) -> None:
        pending: dict[str, concurrent.futures.Future] = {}
        due: dict[str, float] = {}
        seen: dict[str, tuple[float, float, float]] = {}  # id -> (first seen, start period, interval)
        passed: set[str] = set()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            while not self.stop.wait(1.0):
                now = time.monotonic()
                for container in project_containers(running=True):
                    cid = container["id"]
                    if container["service"] == "airflow-init":
                        continue
                    if cid not in seen:
                        seen[cid] = (now, *self.timing(cid))
                    if cid in pending:
                        if not pending[cid].done():
                            continue
                        healthy, took = pending.pop(cid).result()
                        if healthy:
                            passed.add(cid)
                        first, start_period, interval = seen[cid]
                        starting = cid not in passed and now - first < start_period
                        due[cid] = now + (max(HEALTH_POLL, took) if starting else interval)
                    if now >= due.get(cid, now):
                        pending[cid] = pool.submit(self.check, cid)

    @staticmethod
    def timing(container: str) -> tuple[float, float]:
        """(start period, interval) of the container's health check, in seconds."""
        result = run(
            ["podman", "inspect", "--format", "{{json .Config.Healthcheck}}", container], env=engine_env(), check=False, quiet=True
        )
        try:
            config = json.loads(result.stdout)
            return config.get("StartPeriod", 0) / 1e9, config.get("Interval", 0) / 1e9 or 30.0
        except (ValueError, AttributeError):
            return 0.0, 30.0

    @staticmethod
    def check(container: str) -> tuple[bool, float]:
        started = time.monotonic()
        result = run(["podman", "healthcheck", "run", container], env=engine_env(), timeout=180, check=False, quiet=True)
        return result.returncode == 0, time.monotonic() - started


def project_containers(running: bool = False) -> list[dict[str, Any]]:
    args = ["podman", "ps", "--format", "json", "--filter", f"label=com.docker.compose.project={PROJECT_NAME}"]
    if not running:
        args.insert(2, "--all")
    result = run(args, env=engine_env(), timeout=60, check=False, quiet=True)
    if result.returncode != 0 or not result.stdout.strip():
        return []
    containers = []
    for entry in json.loads(result.stdout):
        labels = entry.get("Labels") or {}
        containers.append(
            {
                "id": entry["Id"],
                "name": entry["Names"][0],
                "service": labels.get("com.docker.compose.service", "?"),
                "state": entry.get("State"),
            }
        )
    return containers


# -- images -----------------------------------------------------------------------------------


def image_id(image: str) -> str | None:
    result = run(["podman", "image", "inspect", "--format", "{{.Id}}", image], env=engine_env(), check=False, quiet=True)
    return result.stdout.strip() if result.returncode == 0 else None


def drop_replaced(old: str | None, image: str) -> None:
    """Remove the image that a rebuild of `image` replaced, so that rebuilds do not fill the disk."""
    if old and old != image_id(image):
        run(["podman", "rmi", old], env=engine_env(), check=False, quiet=True)


def image_label(image: str) -> str | None:
    result = run(
        ["podman", "image", "inspect", "--format", f'{{{{index .Labels "{RECIPE_LABEL}"}}}}', image],
        env=engine_env(),
        check=False,
        quiet=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_base_image(work: Path) -> None:
    if image_label(BASE_IMAGE) is not None:
        return
    if shutil.which("debootstrap") is None:
        raise Failure("debootstrap is missing: apt-get install debootstrap")
    say(f"building {BASE_IMAGE}: debootstrap --variant=minbase bookworm")
    rootfs = work / "rootfs"
    mirror = debian_mirror()
    run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror], timeout=900)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        run(["podman", "import", "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE], env=engine_env(), stdin=tar.stdout, timeout=600)
    finally:
        tar.wait()
        shutil.rmtree(rootfs, ignore_errors=True)


def debian_mirror() -> str:
    """The Debian mirror apt already uses on this host (deb.debian.org when none is found)."""
    for source in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + [Path("/etc/apt/sources.list")]:
        if not source.exists():
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and "security" not in line:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if not w.startswith("["))
    return "http://deb.debian.org/debian"


def recipe_hash(folder: Path, extra: str) -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def host_ca_bundle() -> Path:
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise Failure("no CA bundle on the host (/etc/ssl/certs/ca-certificates.crt)")


def ensure_standin(name: str, tag: str, airflow: str, work: Path) -> None:
    recipe = HERE / "images" / name
    wanted = recipe_hash(recipe, f"{BASE_IMAGE} {airflow}")
    if image_label(tag) == wanted:
        return
    say(f"building the stand-in {tag} from tests/compose/images/{name}")
    old = image_id(tag)
    context = work / f"context-{name}"
    shutil.copytree(recipe, context)
    # The host's CA bundle goes into the build context only, never into the repository.
    shutil.copy(host_ca_bundle(), context / "host-ca.crt")
    if name == "airflow":
        shutil.copy(PROJECT / "requirements.lock", context / "requirements.lock")
    try:
        run(
            [
                "podman",
                "build",
                "--label",
                f"{RECIPE_LABEL}={wanted}",
                "--build-arg",
                f"AIRFLOW_VERSION={airflow}",
                "-t",
                tag,
                "-f",
                "Containerfile",
                str(context),
            ],
            env=engine_env(),
            timeout=1800,
        )
    finally:
        shutil.rmtree(context, ignore_errors=True)
    drop_replaced(old, tag)


def pinned_airflow() -> str:
    for line in (PROJECT / "requirements.txt").read_text().splitlines():
        if line.startswith("apache-airflow=="):
            return line.split("==", 1)[1].strip()
    raise Failure("requirements.txt pins no apache-airflow")


# -- the stack --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self, work: Path, service: PodmanService):
        self.work = work
        self.home = work / "project"
        self.ports = {
            name: free_port() for name in ("AIRFLOW_API_HOST_PORT", "MONITOR_HOST_PORT", "MAILPIT_UI_HOST_PORT", "MAILPIT_SMTP_HOST_PORT")
        }
        self.password = secrets.token_urlsafe(12)
        env_file = work / "compose.env"
        values = {
            "AIRFLOW_UID": "50000",
            "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
            "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
            "AIRFLOW_ADMIN_PASSWORD": self.password,
            "AIRFLOW_PROJ_DIR": str(self.home),
            **{name: str(port) for name, port in self.ports.items()},
        }
        env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        env_file.chmod(0o600)
        self.compose_args = [
            "docker-compose",
            "--project-name",
            PROJECT_NAME,
            "--project-directory",
            str(PROJECT),
            "--env-file",
            str(env_file),
            "-f",
            str(PROJECT / "docker-compose.yaml"),
        ]
        override = HERE / "override.yaml"
        if override.exists():
            self.compose_args += ["-f", str(override)]
        # The caller's settings for compose stay out: only the committed files and env_file count.
        self.env = {
            k: v
            for k, v in engine_env().items()
            if not k.startswith(("AIRFLOW", "COMPOSE_", "ADCLICK_", "POSTGRES_", "DOCKER_")) and not k.endswith("_HOST_PORT")
        }
        self.env["DOCKER_HOST"] = f"unix://{service.socket}"
        self.api = f"http://127.0.0.1:{self.ports['AIRFLOW_API_HOST_PORT']}"
        self.session = requests.Session()

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        return run([*self.compose_args, *args], env=self.env, cwd=PROJECT, timeout=timeout, check=check)

    def prepare_project(self) -> None:
        # The mounted folders: a copy of the checkout's dags/, pipelines/ and config/, and empty
        # logs/, model/, runs/, so that the test writes nothing into the checkout.
        self.home.mkdir()
        for folder in ("dags", "pipelines", "config"):
            shutil.copytree(PROJECT / folder, self.home / folder, ignore=shutil.ignore_patterns("__pycache__"))
        for folder in ("logs", "model", "runs"):
            (self.home / folder).mkdir()

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300, check=False)

    def wait_healthy(self, deadline: float) -> None:
        expected = {
            "postgres",
            "redis",
            "mailpit",
            "airflow-apiserver",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
            "monitor",
        }
        while True:
            containers = project_containers()
            states = {}
            for c in containers:
                status = (
                    run(
                        ["podman", "inspect", "--format", "{{.State.Status}}|{{.State.Health.Status}}|{{.State.ExitCode}}", c["id"]],
                        env=engine_env(),
                        check=False,
                        quiet=True,
                    )
                    .stdout.strip()
                    .split("|")
                )
                states[c["name"]] = (c["service"], *(status + ["", "", ""])[:3])
            healthy = {svc for svc, status, health, *_ in states.values() if status == "running" and health == "healthy"}
            workers = [
                name
                for name, (svc, status, health, *_) in states.items()
                if svc == "airflow-worker" and status == "running" and health == "healthy"
            ]
            init_done = any(svc == "airflow-init" and status == "exited" and code == "0" for svc, status, _, code in states.values())
            if expected <= healthy and len(workers) == WORKERS and init_done:
                return
            if time.monotonic() > deadline:
                raise Failure(f"the stack was not healthy in time: {json.dumps(states, indent=1)}")
            time.sleep(3)

    def print_logs(self) -> None:
        for container in sorted(project_containers(), key=lambda c: c["name"]):
            result = run(["podman", "logs", "--tail", str(LOG_LINES), container["id"]], env=engine_env(), check=False, quiet=True)
            print(f"\n===== {container['name']} ({container['service']}, {container['state']}): last {LOG_LINES} log lines", flush=True)
            print((result.stdout + result.stderr).rstrip(), flush=True)

    # -- Airflow's REST API --

    def login(self) -> None:
        response = self.session.post(f"{self.api}/auth/token", json={"username": "airflow", "password": self.password}, timeout=30)
        if response.status_code not in (200, 201):
            raise Failure(f"POST /auth/token: {response.status_code} {response.text[:300]}")
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, **kw) -> Any:
        response = self.session.request(method, f"{self.api}/api/v2{path}", timeout=30, **kw)
        if not response.ok:
            raise Failure(f"{method} /api/v2{path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def wait_for(self, what: str, probe, deadline: float, pause: float = 3.0) -> Any:
        last = None
        while time.monotonic() < deadline:
            try:
                result = probe()
            except (Failure, requests.RequestException) as exc:
                result, last = None, exc
            if result:
                return result
            time.sleep(pause)
        raise Failure(f"{what}: not reached in time (last error: {last})")


# -- the checks -------------------------------------------------------------------------------


def container_hostnames(service: str) -> dict[str, str]:
    """host name -> container name, for the running containers of a service."""
    names = {}
    for container in project_containers(running=True):
        if container["service"] == service:
            host = run(["podman", "inspect", "--format", "{{.Config.Hostname}}", container["id"]], env=engine_env()).stdout.strip()
            names[host] = container["name"]
    return names


# the proof is one scripted scenario against the running stack, read top to bottom like docs/deployment.md
def prove(stack: Stack, deadline: float) -> None:  # noqa: C901
    stack.login()
    workers = container_hostnames("airflow-worker")
    say(f"Celery workers: {workers}")
    if len(workers) != WORKERS:
        raise Failure(f"expected {WORKERS} worker containers, found {workers}")

    stack.wait_for(f"{TRAINING_DAG} parsed", lambda: stack.call("GET", f"/dags/{TRAINING_DAG}"), deadline)
    stack.call("PATCH", f"/dags/{TRAINING_DAG}", json={"is_paused": False})
    run_ids = [f"compose_test_{i}_{secrets.token_hex(3)}" for i in (1, 2)]
    for run_id in run_ids:
        stack.call("POST", f"/dags/{TRAINING_DAG}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
    say(f"triggered {TRAINING_DAG}: {', '.join(run_ids)} (max_active_runs 1: one after the other)")

    runs_deadline = min(deadline, time.monotonic() + RUNS_TIMEOUT)

    def finished(dag_id: str, run_id: str) -> str | None:
        state = stack.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        return state if state in ("success", "failed") else None

    for run_id in run_ids:
        stack.wait_for(f"{TRAINING_DAG} {run_id} finished", lambda run_id=run_id: finished(TRAINING_DAG, run_id), runs_deadline)
    # Unpausing a @daily DAG (catchup false) also has the scheduler start the latest interval's
    # run: every run of the DAG in this stack is checked alike.
    listed = [r["dag_run_id"] for r in stack.call("GET", f"/dags/{TRAINING_DAG}/dagRuns")["dag_runs"]]
    run_ids += sorted(set(listed) - set(run_ids))

    tasks = {t["task_id"]: t for t in stack.call("GET", f"/dags/{TRAINING_DAG}/tasks")["tasks"]}
    ran_on: dict[str, set[str]] = {host: set() for host in workers}
    handoffs = 0
    for run_id in run_ids:
        state = stack.wait_for(f"{TRAINING_DAG} {run_id} finished", lambda run_id=run_id: finished(TRAINING_DAG, run_id), runs_deadline)
        instances = stack.call("GET", f"/dags/{TRAINING_DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
        table = {ti["task_id"]: (ti["state"], ti.get("hostname")) for ti in instances}
        say(f"{run_id}: {state}; task -> (state, host): {table}")
        if state != "success" or any(s != "success" for s, _ in table.values()):
            raise Failure(f"{TRAINING_DAG} {run_id} did not succeed: {table}")
        # Every task ran on a Celery worker container, by the host name Airflow recorded.
        elsewhere = {task: host for task, (_, host) in table.items() if host not in workers}
        if elsewhere:
            raise Failure(f"{run_id}: tasks ran outside the worker containers {sorted(workers)}: {elsewhere}")
        for task, (_, host) in table.items():
            ran_on[host].add(f"{run_id}:{task}")
        # Each task found what its upstream tasks left in the run folder, also from the other worker.
        for task_id, task in tasks.items():
            for downstream in task.get("downstream_task_ids", []):
                if downstream in table and task_id in table and table[task_id][1] != table[downstream][1]:
                    handoffs += 1
        folder = stack.home / "runs" / TRAINING_DAG / safe_run_id(run_id)
        files = sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        if not files:
            raise Failure(f"{run_id}: no working files in {folder.relative_to(stack.home)} of the shared run folder")
        say(f"{run_id}: working files {files}")
    idle = [workers[host] for host, done in ran_on.items() if not done]
    if idle:
        raise Failure(f"with {WORKERS} workers, {idle} ran no task of the two runs: {ran_on}")
    if handoffs == 0:
        raise Failure("no task read files that a task on the other worker wrote: the shared run folder was not exercised")
    say(
        f"both workers ran tasks ({ {workers[h]: len(d) for h, d in ran_on.items()} }); {handoffs} hand-offs between workers, every one found its files"
    )

    # The report of each run reached mailpit.
    mail_api = f"http://127.0.0.1:{stack.ports['MAILPIT_UI_HOST_PORT']}/api/v1/messages"

    def reports() -> list[dict]:
        messages = requests.get(mail_api, timeout=10).json()["messages"]
        found = [m for m in messages if f"{TRAINING_DAG} succeeded" in m["Subject"]]
        return found if len(found) >= len(run_ids) else []

    mails = stack.wait_for("the reports in mailpit", reports, runs_deadline)
    for mail in mails:
        if [to["Address"] for to in mail["To"]] != ["ml-team@example.com"]:
            raise Failure(f"report sent to {mail['To']}, expected ml-team@example.com")
    say(f"mailpit received: {[m['Subject'] for m in mails]}")

    # Airflow_Lab2_Flask, triggered by each training run, ran on a worker and succeeded.
    def monitor_runs() -> list[dict]:
        found = stack.call("GET", f"/dags/{MONITOR_DAG}/dagRuns")["dag_runs"]
        done = [r for r in found if r["state"] in ("success", "failed")]
        return done if len(done) >= len(run_ids) and len(done) == len(found) else []

    flask_runs = stack.wait_for(f"{MONITOR_DAG} runs", monitor_runs, runs_deadline)
    for flask_run in flask_runs:
        instances = stack.call("GET", f"/dags/{MONITOR_DAG}/dagRuns/{flask_run['dag_run_id']}/taskInstances")["task_instances"]
        table = {ti["task_id"]: (ti["state"], ti.get("hostname")) for ti in instances}
        if flask_run["state"] != "success" or any(host not in workers for _, host in table.values()):
            raise Failure(f"{MONITOR_DAG} {flask_run['dag_run_id']}: {flask_run['state']}, {table}")
    say(f"{MONITOR_DAG}: {len(flask_runs)} runs succeeded on the workers")

    # The monitor container serves the champion that these runs trained.
    monitor = f"http://127.0.0.1:{stack.ports['MONITOR_HOST_PORT']}"
    models = requests.get(f"{monitor}/api/models", timeout=30)
    if not models.ok:
        raise Failure(f"monitor /api/models: {models.status_code} {models.text[:500]}")
    body = models.json()
    trained = {row["version"]: row["run_id"] for row in body["versions"]}
    # every run is in the registry: as the run that made a version, or as one that trained an identical model again
    # (the same data and settings give the same ONNX bytes, recorded against the existing version)
    recorded = sorted([row["run_id"] for row in body["versions"]] + [r for row in body["versions"] for r in row.get("retrained_by") or []])
    if recorded != sorted(run_ids):
        raise Failure(f"the registry the monitor reads records runs {recorded} ({body['versions']}), expected each of {run_ids} once")
    # each report names the version its run registered or trained again
    reported = [int(m) for mail in mails for m in re.findall(r"\bv(\d+)\b", mail["Subject"])]
    if len(reported) != len(run_ids) or not set(reported) <= set(trained):
        raise Failure(f"the reports name versions {sorted(reported)}, the registry holds {sorted(trained)}")
    rows = sample_rows(3)
    answer = requests.post(f"{monitor}/api/predict", json={"rows": rows}, timeout=30)
    if answer.status_code != 200:
        raise Failure(f"monitor /api/predict: {answer.status_code} {answer.text[:500]}")
    prediction = answer.json()
    if prediction["model_version"] != body["champion"] or trained.get(prediction["model_version"]) not in run_ids:
        raise Failure(
            f"/api/predict answered with version {prediction['model_version']}; the champion is {body['champion']}, trained by {trained}"
        )
    if len(prediction["predictions"]) != len(rows):
        raise Failure(f"/api/predict: {len(rows)} rows sent, {len(prediction['predictions'])} predictions back")
    say(
        f"monitor /api/predict: version {prediction['model_version']} (trained by {trained[prediction['model_version']]}): {prediction['predictions']}"
    )


def sample_rows(count: int) -> list[dict[str, float]]:
    import yaml

    training = yaml.safe_load((PROJECT / "pipelines" / "airflow_lab2.yaml").read_text())[TRAINING_DAG]["training"]
    with open(PROJECT / training["dataset"], newline="") as handle:
        reader = csv.DictReader(handle)
        return [{f: float(row[f]) for f in training["features"]} for row in itertools.islice(reader, count)]


def leftovers(service_socket: Path) -> list[str]:
    found = []
    label = f"label=com.docker.compose.project={PROJECT_NAME}"
    for kind in ("container", "network", "volume"):
        args = (
            ["podman", kind, "ls", "--quiet", "--filter", label]
            if kind != "container"
            else ["podman", "ps", "--all", "--quiet", "--filter", label]
        )
        out = run(args, env=engine_env(), check=False, quiet=True).stdout.split()
        found += [f"{kind} {name}" for name in out]
    # conmon monitors each container; none may outlive the stack
    ps = run(["ps", "-eo", "pid,args"], check=False, quiet=True).stdout.splitlines()
    found += [f"process {line.strip()}" for line in ps if "conmon" in line and PROJECT_NAME in line]
    if service_socket.exists():
        found.append(f"socket {service_socket}")
    return found


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    started = time.monotonic()
    deadline = started + DEADLINE
    ensure_tools()
    if os.geteuid() != 0:
        print("compose-test runs podman as root (the stand-in images and the stack are root's); run it as root.", file=sys.stderr)
        return 2
    airflow = pinned_airflow()
    work = Path(tempfile.mkdtemp(prefix="adclick-compose-"))
    # A SIGTERM (CI's timeout) ends in the same clean-up as a failure.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    failed: BaseException | None = None
    health = HealthChecks()
    try:
        ensure_base_image(work)
        for name, tag in STANDINS.items():
            ensure_standin(name, tag.format(airflow=airflow), airflow, work)
        say(f"images ready after {time.monotonic() - started:.0f} s (stand-ins: redis:7.2-bookworm is Debian's Redis 7.0 here)")
        with PodmanService(work) as service:
            stack = Stack(work, service)
            stack.prepare_project()
            stack.down()  # what a killed earlier run may have left
            say("building the project's image (Dockerfile, unchanged)")
            old = image_id(PROJECT_IMAGE.format(airflow=airflow))
            stack.compose("build", "airflow-init", timeout=1800)
            drop_replaced(old, PROJECT_IMAGE.format(airflow=airflow))
            say(f"project image ready after {time.monotonic() - started:.0f} s; starting the stack with {WORKERS} workers")
            health.start()
            try:
                up_started = time.monotonic()
                # `up` returns once every container has started, the workers and the monitor after
                # the api-server became healthy; the runs go while the last checks pass, and every
                # service must be healthy at the end.
                stack.compose("up", "--detach", "--scale", f"airflow-worker={WORKERS}", timeout=UP_TIMEOUT)
                say(f"every container started {time.monotonic() - up_started:.0f} s after `up`")
                prove(stack, deadline)
                stack.wait_healthy(min(deadline, time.monotonic() + UP_TIMEOUT))
                say(f"every service healthy {time.monotonic() - up_started:.0f} s after `up`")
            except BaseException as exc:
                failed = exc
                say(f"FAILED: {exc}")
                stack.print_logs()
            finally:
                health.stop.set()
                health.join(timeout=60)
                say("docker-compose down -v")
                stack.down()
        left = leftovers(service.socket)
        if left:
            raise Failure(f"left behind after down -v: {left}")
    except Failure as exc:
        failed = failed or exc
        if failed is exc:
            say(f"FAILED: {exc}")
    except KeyboardInterrupt as exc:
        failed = failed or exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    if failed is not None:
        say(f"compose-test failed after {took:.0f} s")
        return 1
    say(f"compose-test passed in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
