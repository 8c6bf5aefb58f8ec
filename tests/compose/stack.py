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
from dataclasses import dataclass
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
# the services of docker-compose.yaml that do not run the project's image
BASE_SERVICES = ("postgres", "redis", "mailpit")
WORKERS = 2
TRAINING_DAG = "Airflow_Lab2"
MONITOR_DAG = "Airflow_Lab2_Flask"
HEALTH_POLL = 5.0  # seconds between two quick checks of a starting container (each check a new process)
SLOW_CHECK = 15.0  # seconds: a check that took longer keeps the engine's pace even while starting
HEALTH_TICK = 2.0  # seconds between two looks at the running containers (each a `podman ps`)
DEADLINE = 45 * 60  # the whole test, cold (image builds included)
UP_TIMEOUT = 12 * 60  # `docker-compose up` until every service is healthy
RUNS_TIMEOUT = 12 * 60  # both training runs and the monitor DAG's runs
SCHEDULED_RUN_WAIT = 30  # seconds for the scheduler to start the run of the latest interval once the DAG is unpaused
LOG_LINES = 40
# Seconds a container has to stop on SIGTERM at the end before it is killed: the stack is thrown away, and the
# api-server, the scheduler and the triggerer were still running after 10 s (measured), to be killed anyway.
STOP_TIMEOUT = 5


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


def missing_packages() -> list[str]:
    """The packages of DEBIAN_PACKAGES that dpkg does not have installed (all of them when dpkg cannot say)."""
    missing = []
    for package in DEBIAN_PACKAGES:
        try:
            status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, timeout=60).stdout
        except OSError:
            return list(DEBIAN_PACKAGES)
        if not status.endswith("installed") or "not-installed" in status:
            missing.append(package)
    return missing


def ensure_tools() -> None:
    # each package is checked, not only the engine's commands: podman alone may be there without debootstrap
    missing = missing_packages()
    if not missing:
        return
    install = f"apt-get update && apt-get install -y --no-install-recommends {' '.join(DEBIAN_PACKAGES)}"
    if os.environ.get("CI", "").lower() != "true":
        print(
            f"compose-test needs Debian packages that are not installed: {', '.join(missing)}.\n"
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


@dataclass
class CheckTimer:
    """When a container's health check runs next, as an engine with timers would run it."""

    first_seen: float
    start_period: float
    interval: float
    slow: bool  # the check starts a Python process that imports Airflow (or Celery): seconds of CPU each time
    passed: bool = False

    awaited: bool = True  # another service waits for it to be healthy (depends_on: service_healthy)

    def first(self) -> float:
        # an engine runs the first check one interval after the start; one that others wait for goes at once
        return 0.0 if self.polled else self.interval

    def after(self, healthy: bool, took: float, now: float) -> float:
        self.passed |= healthy
        self.slow |= took > SLOW_CHECK
        starting = not self.passed and now - self.first_seen < self.start_period
        return HEALTH_POLL if starting and self.polled else self.interval

    @property
    def polled(self) -> bool:
        return self.awaited and not self.slow


class HealthChecks(threading.Thread):
    """Runs the health checks of the stack's running containers, as an engine with timers would.

    podman schedules health checks with systemd timers; without systemd they never run by
    themselves, so `depends_on: condition: service_healthy` would wait forever. Each container is
    checked on its own, every `interval` of its health check (the first one interval after its
    start), so that `retries` keeps the meaning it has in production. The quick checks (curl,
    pg_isready: a fraction of a second) of the services that another one waits for run every
    HEALTH_POLL seconds instead while the container is in its start period and has not passed yet,
    like Docker's `start_interval`: they become healthy within seconds, and the services waiting for
    them start. Slow checks (an Airflow or Celery CLI process: 10 to 70 s of a busy two-core machine)
    always keep the engine's pace: run back to back, they took half of the CPU from the components
    starting.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.awaited = awaited_services()

    def run(self) -> None:
        pending: dict[str, concurrent.futures.Future] = {}
        due: dict[str, float] = {}
        timers: dict[str, CheckTimer] = {}
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)
        try:
            while not self.stop.wait(HEALTH_TICK):
                now = time.monotonic()
                for container in project_containers(running=True):
                    cid = container["id"]
                    if container["service"] == "airflow-init":
                        continue
                    if cid not in timers:
                        timers[cid] = self.timer(cid, now, container["service"] in self.awaited)
                        due[cid] = now + timers[cid].first()
                    if cid in pending:
                        if not pending[cid].done():
                            continue
                        (healthy, _), took = pending.pop(cid).result()
                        due[cid] = now + timers[cid].after(healthy, took, now)
                    if now >= due[cid]:
                        pending[cid] = pool.submit(self.check, cid)
        finally:
            # a check in flight ends by itself (or with its container): the stack's teardown does not wait for it
            pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def timer(container: str, now: float, awaited: bool) -> CheckTimer:
        """The timer of the container's health check: its start period, interval and whether it is slow."""
        result = run(
            ["podman", "inspect", "--format", "{{json .Config.Healthcheck}}", container], env=engine_env(), check=False, quiet=True
        )
        try:
            config = json.loads(result.stdout)
            test = " ".join(config.get("Test") or [])
            slow = re.search(r"\b(airflow|celery) ", test) is not None
            return CheckTimer(now, config.get("StartPeriod", 0) / 1e9, config.get("Interval", 0) / 1e9 or 30.0, slow, awaited=awaited)
        except (ValueError, AttributeError):
            return CheckTimer(now, 0.0, 30.0, False, awaited=awaited)

    @staticmethod
    def check(container: str) -> tuple[tuple[bool, int], float]:
        """((passed, exit status of `podman healthcheck run`), seconds it took)."""
        started = time.monotonic()
        result = run(["podman", "healthcheck", "run", container], env=engine_env(), timeout=180, check=False, quiet=True)
        return (result.returncode == 0, result.returncode), time.monotonic() - started


def stop_container(container: str) -> float:
    """`podman stop`: SIGTERM, then SIGKILL after STOP_TIMEOUT s; how long it took."""
    started = time.monotonic()
    run(["podman", "stop", "--time", str(STOP_TIMEOUT), container], env=engine_env(), timeout=120, check=False, quiet=True)
    return time.monotonic() - started


def awaited_services() -> set[str]:
    """The services of docker-compose.yaml that another one waits for (`depends_on: condition: service_healthy`)."""
    import yaml

    services = yaml.safe_load((PROJECT / "docker-compose.yaml").read_text())["services"]
    return {
        name
        for service in services.values()
        if isinstance(service.get("depends_on"), dict)
        for name, wait in service["depends_on"].items()
        if (wait or {}).get("condition") == "service_healthy"
    }


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
        # All at once first: compose stops the containers in the reverse order of depends_on, one
        # stage after the other, each waiting for its slowest container (40 s here for three stages).
        started = time.monotonic()
        running = project_containers(running=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
            took = dict(zip([c["service"] for c in running], pool.map(stop_container, [c["id"] for c in running]), strict=True))
        stopped = time.monotonic()
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", str(STOP_TIMEOUT), timeout=300, check=False)
        if running:
            slowest = ", ".join(f"{name} {secs:.0f} s" for name, secs in sorted(took.items(), key=lambda t: -t[1])[:3])
            say(
                f"{len(running)} containers stopped in {stopped - started:.0f} s (slowest: {slowest}); `down -v` took {time.monotonic() - stopped:.0f} s"
            )

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


def prove(stack: Stack, deadline: float, phases: Phases) -> None:
    stack.login()
    workers = container_hostnames("airflow-worker")
    say(f"Celery workers: {workers}")
    if len(workers) != WORKERS:
        raise Failure(f"expected {WORKERS} worker containers, found {workers}")
    run_ids = trigger_training_runs(stack, deadline)
    phases.mark("DAG parsed, runs triggered")
    runs_deadline = min(deadline, time.monotonic() + RUNS_TIMEOUT)
    run_ids = wait_for_training_runs(stack, run_ids, runs_deadline)
    phases.mark("training runs")
    check_training_runs(stack, run_ids, workers)
    check_preloads()
    mails = check_reports(stack, run_ids, runs_deadline)
    check_monitor_dag(stack, run_ids, workers, runs_deadline)
    phases.mark("mail and monitor DAG")
    check_predictions(stack, run_ids, mails)
    phases.mark("monitor /api/predict")


def trigger_training_runs(stack: Stack, deadline: float) -> list[str]:
    """Unpause the training DAG and trigger it: with the scheduler's run, two runs (one after the other, max_active_runs 1)."""
    stack.wait_for(f"{TRAINING_DAG} parsed", lambda: stack.call("GET", f"/dags/{TRAINING_DAG}"), deadline, pause=1.0)
    stack.call("PATCH", f"/dags/{TRAINING_DAG}", json={"is_paused": False})
    run_ids = [trigger(stack, 1)]
    # Unpausing a @daily DAG (catchup false) has the scheduler start the latest interval's run at
    # once: the second run. A DAG without a due interval gets a second triggered run instead.
    waited = time.monotonic() + SCHEDULED_RUN_WAIT
    while time.monotonic() < waited:
        listed = [r["dag_run_id"] for r in stack.call("GET", f"/dags/{TRAINING_DAG}/dagRuns")["dag_runs"]]
        if set(listed) - set(run_ids):
            say(f"triggered {TRAINING_DAG}: {run_ids[0]}; the scheduler started {sorted(set(listed) - set(run_ids))}")
            return run_ids
        time.sleep(1)
    run_ids.append(trigger(stack, 2))
    say(f"triggered {TRAINING_DAG}: {', '.join(run_ids)} (the scheduler started no run of its own)")
    return run_ids


def trigger(stack: Stack, number: int) -> str:
    run_id = f"compose_test_{number}_{secrets.token_hex(3)}"
    stack.call("POST", f"/dags/{TRAINING_DAG}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
    return run_id


def run_finished(stack: Stack, dag_id: str, run_id: str) -> str | None:
    state = stack.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
    return state if state in ("success", "failed") else None


def wait_for_training_runs(stack: Stack, run_ids: list[str], runs_deadline: float) -> list[str]:
    """Wait for the triggered runs and for any other run of the DAG; returns every run id, the triggered first."""
    for run_id in run_ids:
        stack.wait_for(f"{TRAINING_DAG} {run_id} finished", lambda run_id=run_id: run_finished(stack, TRAINING_DAG, run_id), runs_deadline)
    # every run of the DAG in this stack is checked alike, the scheduler's too
    listed = [r["dag_run_id"] for r in stack.call("GET", f"/dags/{TRAINING_DAG}/dagRuns")["dag_runs"]]
    every = run_ids + sorted(set(listed) - set(run_ids))
    for run_id in every:
        stack.wait_for(f"{TRAINING_DAG} {run_id} finished", lambda run_id=run_id: run_finished(stack, TRAINING_DAG, run_id), runs_deadline)
    return every


def check_training_runs(stack: Stack, run_ids: list[str], workers: dict[str, str]) -> None:
    """Every task succeeded on a worker container, both workers ran tasks, and tasks on one worker found the files of the other."""
    tasks = {t["task_id"]: t for t in stack.call("GET", f"/dags/{TRAINING_DAG}/tasks")["tasks"]}
    ran_on: dict[str, set[str]] = {host: set() for host in workers}
    handoffs = 0
    for run_id in run_ids:
        table = check_training_run(stack, run_id, workers)
        for task, (_, host) in table.items():
            ran_on[host].add(f"{run_id}:{task}")
        # Each task found what its upstream tasks left in the run folder, also from the other worker.
        handoffs += sum(
            1
            for task_id, task in tasks.items()
            for downstream in task.get("downstream_task_ids", [])
            if downstream in table and task_id in table and table[task_id][1] != table[downstream][1]
        )
    idle = [workers[host] for host, done in ran_on.items() if not done]
    if idle:
        raise Failure(f"with {WORKERS} workers, {idle} ran no task of the {len(run_ids)} runs: {ran_on}")
    if handoffs == 0:
        raise Failure("no task read files that a task on the other worker wrote: the shared run folder was not exercised")
    say(
        f"both workers ran tasks ({ {workers[h]: len(d) for h, d in ran_on.items()} }); {handoffs} hand-offs between workers, every one found its files"
    )


def check_preloads() -> None:
    """Each Celery worker preloaded what its task processes parse (config/airflow_local_settings.py); no other service did."""
    said = {}
    for container in project_containers():
        result = run(["podman", "logs", container["id"]], env=engine_env(), check=False, quiet=True)
        said[container["name"]] = (container["service"], "modules preloaded for the task processes" in result.stdout + result.stderr)
    wrong = {name: found for name, (service, found) in said.items() if found != (service == "airflow-worker")}
    if wrong:
        raise Failure(f"the preload line is missing from a worker's log or found in another service's: {wrong}")
    say(f"preloaded for the task processes: {sorted(name for name, (_, found) in said.items() if found)}")


def check_training_run(stack: Stack, run_id: str, workers: dict[str, str]) -> dict[str, tuple[str, str]]:
    """One run: succeeded, every task on a worker, its working files in the shared run folder; task -> (state, host)."""
    state = stack.call("GET", f"/dags/{TRAINING_DAG}/dagRuns/{run_id}")["state"]
    instances = stack.call("GET", f"/dags/{TRAINING_DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
    table = {ti["task_id"]: (ti["state"], ti.get("hostname")) for ti in instances}
    say(f"{run_id}: {state}; task -> (state, host): {table}")
    if state != "success" or any(s != "success" for s, _ in table.values()):
        raise Failure(f"{TRAINING_DAG} {run_id} did not succeed: {table}")
    # Every task ran on a Celery worker container, by the host name Airflow recorded.
    elsewhere = {task: host for task, (_, host) in table.items() if host not in workers}
    if elsewhere:
        raise Failure(f"{run_id}: tasks ran outside the worker containers {sorted(workers)}: {elsewhere}")
    folder = stack.home / "runs" / TRAINING_DAG / safe_run_id(run_id)
    files = sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        raise Failure(f"{run_id}: no working files in {folder.relative_to(stack.home)} of the shared run folder")
    say(f"{run_id}: working files {files}")
    return table


def check_reports(stack: Stack, run_ids: list[str], runs_deadline: float) -> list[dict]:
    """The report of each run reached mailpit, addressed to the pipeline's recipients."""
    mail_api = f"http://127.0.0.1:{stack.ports['MAILPIT_UI_HOST_PORT']}/api/v1/messages"

    def reports() -> list[dict]:
        messages = requests.get(mail_api, timeout=10).json()["messages"]
        found = [m for m in messages if f"{TRAINING_DAG} succeeded" in m["Subject"]]
        return found if len(found) >= len(run_ids) else []

    mails = stack.wait_for("the reports in mailpit", reports, runs_deadline, pause=1.0)
    for mail in mails:
        if [to["Address"] for to in mail["To"]] != ["ml-team@example.com"]:
            raise Failure(f"report sent to {mail['To']}, expected ml-team@example.com")
    say(f"mailpit received: {[m['Subject'] for m in mails]}")
    return mails


def check_monitor_dag(stack: Stack, run_ids: list[str], workers: dict[str, str], runs_deadline: float) -> None:
    """Airflow_Lab2_Flask, triggered by each training run, ran on a worker and succeeded."""

    def monitor_runs() -> list[dict]:
        found = stack.call("GET", f"/dags/{MONITOR_DAG}/dagRuns")["dag_runs"]
        done = [r for r in found if r["state"] in ("success", "failed")]
        return done if len(done) >= len(run_ids) and len(done) == len(found) else []

    flask_runs = stack.wait_for(f"{MONITOR_DAG} runs", monitor_runs, runs_deadline, pause=1.0)
    for flask_run in flask_runs:
        instances = stack.call("GET", f"/dags/{MONITOR_DAG}/dagRuns/{flask_run['dag_run_id']}/taskInstances")["task_instances"]
        table = {ti["task_id"]: (ti["state"], ti.get("hostname")) for ti in instances}
        if flask_run["state"] != "success" or any(host not in workers for _, host in table.values()):
            raise Failure(f"{MONITOR_DAG} {flask_run['dag_run_id']}: {flask_run['state']}, {table}")
    say(f"{MONITOR_DAG}: {len(flask_runs)} runs succeeded on the workers")


def check_predictions(stack: Stack, run_ids: list[str], mails: list[dict]) -> None:
    """The monitor container records every run in its registry and serves the champion that these runs trained."""
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


class Phases:
    """How long each step took, and the machine's load meanwhile: printed at the end, passed or failed."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.times: list[tuple[str, float]] = []
        self.loads = [os.getloadavg()[0]]

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.times.append((name, now - self.last))
        self.last = now
        self.loads.append(os.getloadavg()[0])
        say(f"{name}: {self.times[-1][1]:.0f} s (after {now - self.started:.0f} s)")

    def report(self) -> None:
        steps = "; ".join(f"{name} {took:.0f} s" for name, took in self.times)
        say(f"phases: {steps}; total {time.monotonic() - self.started:.0f} s")
        one, five, fifteen = os.getloadavg()
        say(
            f"load average (1 min) sampled at each phase: {min(self.loads):.1f} to {max(self.loads):.1f}; now {one:.2f}, {five:.2f}, {fifteen:.2f}"
        )


def prove_health_checks_fail(stack: Stack) -> None:
    """A health check fails when its own component fails, while another of the same kind still works.

    The Celery process of one worker is stopped (SIGSTOP: hung, as a deadlocked worker would be). Its
    container's check, `celery inspect ping -d celery@$(hostname)`, must fail, although the other worker still
    answers pings (it stays healthy). It passed before: the worker was healthy.
    """
    workers = sorted((c for c in project_containers(running=True) if c["service"] == "airflow-worker"), key=lambda c: c["name"])
    if len(workers) != WORKERS:
        raise Failure(f"expected {WORKERS} running workers, found {[c['name'] for c in workers]}")
    hung, other = workers
    passed_before = last_health_check(hung["id"])
    if passed_before is not True:
        raise Failure(f"{hung['name']}: not healthy before its process was stopped ({passed_before})")
    pid = celery_process(hung["id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        (passed, status), took = HealthChecks.check(hung["id"])
    finally:
        os.kill(pid, signal.SIGCONT)
    # the other worker answered pings meanwhile: it is still healthy, by the checks run as usual
    still = last_health_check(other["id"])
    if passed:
        raise Failure(f"{hung['name']}: `podman healthcheck run` passed while its Celery process was stopped")
    if still is not True:
        raise Failure(f"{other['name']}: not healthy while only {hung['name']} was stopped ({still})")
    say(
        f"health checks: {hung['name']} was healthy; with its Celery process (pid {pid}) stopped, `podman healthcheck run` "
        f"on it failed (exit {status}, {took:.0f} s), while {other['name']} stayed healthy"
    )


def last_health_check(container: str) -> bool | str:
    """Whether the container is healthy (its checks passed, none failed since as many times as `retries` says), else what podman recorded."""
    result = run(["podman", "inspect", "--format", "{{json .State.Health}}", container], env=engine_env(), check=False, quiet=True)
    try:
        health = json.loads(result.stdout)
        return health["Status"] == "healthy" or f"{health['Status']}, last check {(health.get('Log') or [None])[-1]}"
    except (ValueError, KeyError, TypeError):
        return f"no health record: {result.stdout.strip()[:200]} {result.stderr.strip()[:200]}"


def celery_process(container: str) -> int:
    """The host pid of the Celery worker's main process: the child of the container's dumb-init."""
    import psutil

    init = int(run(["podman", "inspect", "--format", "{{.State.Pid}}", container], env=engine_env()).stdout.strip())
    found = [p.pid for p in psutil.Process(init).children() if "celery" in " ".join(p.cmdline())]
    if len(found) != 1:
        raise Failure(f"{container}: expected one Celery process under dumb-init (pid {init}), found {found}")
    return found[0]


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    phases = Phases()
    ensure_tools()
    if os.geteuid() != 0:
        print("compose-test runs podman as root (the stand-in images and the stack are root's); run it as root.", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="adclick-compose-"))
    # A SIGTERM (CI's timeout) ends in the same clean-up as a failure.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    failed: BaseException | None = None
    try:
        failed = build_and_prove(work, phases)
    except Failure as exc:
        failed = failed or exc
        say(f"FAILED: {exc}")
    except KeyboardInterrupt as exc:
        failed = failed or exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    phases.report()
    took = time.monotonic() - phases.started
    if failed is not None:
        say(f"compose-test failed after {took:.0f} s")
        return 1
    say(f"compose-test passed in {took:.0f} s")
    return 0


def build_and_prove(work: Path, phases: Phases) -> BaseException | None:
    """The images, then the stack started, proven and taken down; what failed in the stack (None: nothing)."""
    airflow = pinned_airflow()
    ensure_base_image(work)
    for name, tag in STANDINS.items():
        ensure_standin(name, tag.format(airflow=airflow), airflow, work)
    phases.mark("stand-in images ready (redis:7.2-bookworm is Debian's Redis 7.0 here)")
    with PodmanService(work) as service:
        stack = Stack(work, service)
        stack.prepare_project()
        if any(not item.startswith("socket ") for item in leftovers(service.socket)):
            stack.down()  # what a killed earlier run left
        failed = up_and_prove(stack, airflow, phases)
        phases.mark("docker-compose down -v")
    left = leftovers(service.socket)
    if left:
        raise Failure(f"left behind after down -v: {left}")
    return failed


def build_project_image(stack: Stack, airflow: str) -> None:
    """The project's image with the Dockerfile, unchanged (cached layers: seconds when nothing changed), while
    the services that need no project image (PostgreSQL, Redis, mailpit) start and pass their checks."""
    say("building the project's image (Dockerfile, unchanged); starting postgres, redis and mailpit meanwhile")
    old = image_id(PROJECT_IMAGE.format(airflow=airflow))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        services = pool.submit(stack.compose, "up", "--detach", *BASE_SERVICES, timeout=UP_TIMEOUT)
        stack.compose("build", "airflow-init", timeout=1800)
        services.result()
    drop_replaced(old, PROJECT_IMAGE.format(airflow=airflow))


def up_and_prove(stack: Stack, airflow: str, phases: Phases) -> BaseException | None:
    deadline = phases.started + DEADLINE
    health = HealthChecks()
    health.start()
    try:
        build_project_image(stack, airflow)
        phases.mark(f"project image ready; starting the stack with {WORKERS} workers")
        # `up` returns once every container has started, the workers and the monitor after the
        # api-server became healthy; the runs go while the last checks pass, and every service
        # must be healthy at the end.
        stack.compose("up", "--detach", "--scale", f"airflow-worker={WORKERS}", timeout=UP_TIMEOUT)
        phases.mark("every container started (`up`)")
        prove(stack, deadline, phases)
        stack.wait_healthy(min(deadline, time.monotonic() + UP_TIMEOUT))
        phases.mark("every service healthy")
        prove_health_checks_fail(stack)
        phases.mark("a stopped worker fails its health check")
        return None
    except BaseException as exc:
        say(f"FAILED: {exc}")
        stack.print_logs()
        return exc
    finally:
        health.stop.set()
        health.join(timeout=60)
        say("docker-compose down -v")
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
