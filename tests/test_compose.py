"""docker-compose.yaml, checked without a Docker engine: Debian's `docker-compose config` resolves it,
then the assertions hold the promises of docs/deployment.md (ports, profiles, shared settings, image).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.support import PROJECT, mandatory_in_ci

COMPOSE_FILE = PROJECT / "docker-compose.yaml"
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "flower",
}
# host port -> the service that publishes it, as docs/deployment.md lists them
HOST_PORTS = {8080: "airflow-apiserver", 5555: "monitor", 5556: "flower", 8025: "mailpit", 1025: "mailpit"}
SECRETS = ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "POSTGRES_PASSWORD")


def _compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        mandatory_in_ci("docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")
    return binary


def compose(tmp_path: Path, *args: str, secrets: bool = True, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`docker-compose <args>` on the project's file, with an env file of placeholder secrets.

    The caller's environment and any .env of the checkout are kept out, so the result depends on
    the committed files only.
    """
    env_file = tmp_path / "compose.env"
    values = {name: f"placeholder-{name.lower()}" for name in SECRETS} if secrets else {}
    env_file.write_text("".join(f"{name}={value}\n" for name, value in {**values, **(extra or {})}.items()))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SECRETS and not k.startswith(("AIRFLOW", "COMPOSE_", "ADCLICK_OPS_IMAGE")) and not k.endswith("_HOST_PORT")
    }
    return subprocess.run(
        [_compose_binary(), "--project-directory", str(PROJECT), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    """The compose file as docker-compose resolves it, with every profile's services."""
    result = compose(tmp_path_factory.mktemp("compose"), "--profile", "flower", "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def pinned_airflow() -> str:
    match = re.search(r"^apache-airflow==(\S+)", (PROJECT / "requirements.txt").read_text(), re.M)
    assert match, "requirements.txt pins no apache-airflow version"
    return match.group(1)


def test_config_is_valid(tmp_path):
    result = compose(tmp_path, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_missing_secrets_are_refused_with_a_pointer_to_env_example(tmp_path):
    result = compose(tmp_path, "config", "-q", secrets=False)
    assert result.returncode != 0
    assert ".env.example" in result.stderr, result.stderr


def test_env_example_names_every_secret():
    names = {
        line.split("=", 1)[0] for line in (PROJECT / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")
    }
    assert set(SECRETS) <= names
    for line in (PROJECT / ".env.example").read_text().splitlines():
        if line.split("=", 1)[0] in SECRETS:
            assert line.endswith("="), f"{line!r}: .env.example must leave secrets empty"


def _host_ports(service: dict) -> list[tuple[str, int]]:
    ports = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.append((entry.get("host_ip", ""), int(entry["published"])))
        else:
            parts = str(entry).split("/")[0].split(":")
            ports.append(("" if len(parts) < 3 else parts[0], int(parts[-2])))
    return ports


def test_each_host_port_is_published_once(resolved):
    seen: dict[int, str] = {}
    for name, service in resolved["services"].items():
        for _, port in _host_ports(service):
            assert port not in seen, f"host port {port} is published by both {seen[port]} and {name}"
            seen[port] = name
    assert seen == HOST_PORTS


def test_flower_runs_only_under_its_profile(resolved):
    services = resolved["services"]
    assert services["flower"].get("profiles") == ["flower"]
    others = {name: s.get("profiles") for name, s in services.items() if name != "flower" and s.get("profiles")}
    assert not others, f"only flower has a profile: {others}"
    needing_flower = [name for name, s in services.items() if "flower" in (s.get("depends_on") or {})]
    assert not needing_flower, f"{needing_flower} would start flower without its profile"


def test_every_airflow_service_shares_the_common_environment(raw, resolved):
    common = raw["x-airflow-common"]
    services = resolved["services"]
    assert AIRFLOW_SERVICES <= set(services)
    reference = services["airflow-scheduler"]
    shared_keys = set(common["environment"]) | set(_env_file_keys(common))
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        missing = shared_keys - set(env)
        assert not missing, f"{name} lacks {sorted(missing)} of x-airflow-common"
        differing = sorted(k for k in shared_keys if env[k] != reference["environment"][k])
        assert not differing, f"{name} overrides {differing} of x-airflow-common"
        assert services[name]["image"] == reference["image"]
        assert services[name]["volumes"] == reference["volumes"]
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def _env_file_keys(common: dict) -> list[str]:
    keys = []
    for path in common.get("env_file", []):
        for line in (PROJECT / path).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                keys.append(line.split("=", 1)[0])
    return keys


def test_project_folders_are_mounted_where_the_settings_point(resolved):
    service = resolved["services"]["airflow-worker"]
    env = service["environment"]
    mounts = {}
    for volume in service["volumes"]:
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
        mounts[target] = source
    home = env["ADCLICK_OPS_HOME"]
    for folder in ("dags", "pipelines", "last-good", "config", "logs", "model", "runs"):
        assert mounts.get(f"{home}/{folder}") == str(PROJECT / folder), f"{folder}/ is not mounted at {home}/{folder}"
    assert env["ADCLICK_OPS_PIPELINES"] == f"{home}/pipelines"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == f"{home}/dags"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_image_follows_the_pinned_airflow_version(resolved):
    version = pinned_airflow()
    dockerfile = (PROJECT / "Dockerfile").read_text()
    default = re.search(r"^ARG AIRFLOW_VERSION=(\S+)", dockerfile, re.M)
    assert default and default.group(1) == version, f"Dockerfile's AIRFLOW_VERSION is not {version}"
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python", dockerfile, re.M)
    for name, service in resolved["services"].items():
        if "build" in service:
            assert str(service["build"]["args"]["AIRFLOW_VERSION"]) == version, name
            assert service["image"].endswith(f":{version}"), f"{name}: image {service['image']} is not tagged {version}"


def test_every_service_has_a_health_check(resolved):
    for name, service in resolved["services"].items():
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name} has no health check"


def test_smtp_connection_points_at_mailpit(resolved):
    services = resolved["services"]
    assert services["mailpit"]["image"].startswith("axllent/mailpit:")
    uri = urlsplit(services["airflow-worker"]["environment"]["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert (uri.scheme, uri.hostname, uri.port) == ("smtp", "mailpit", 1025)
    extra = parse_qs(uri.query)
    assert extra["from_email"] == ["adclick-ops@example.com"]
    # the URI form carries strings: a flag is either "true" or left out, never "false"
    assert all(v == ["true"] for k, v in extra.items() if k.startswith("disable_"))


def test_monitor_runs_the_cli_against_the_api_server(resolved):
    monitor = resolved["services"]["monitor"]
    assert monitor["command"] == [
        "adclick-ops",
        "monitor",
        "--host",
        "0.0.0.0",
        "--port",
        "5555",
        "--airflow-url",
        "http://airflow-apiserver:8080",
    ]
    # the worker's start_Flask_API finds this monitor instead of serving one of its own
    assert resolved["services"]["airflow-worker"]["environment"]["ADCLICK_MONITOR_HOST"] == "monitor"


def test_host_ports_follow_their_variables(tmp_path):
    # `make compose-test` publishes on free ports; a user with 8080 taken does the same in .env.
    variables = {
        "AIRFLOW_API_HOST_PORT": ("airflow-apiserver", 18080),
        "MONITOR_HOST_PORT": ("monitor", 15555),
        "FLOWER_HOST_PORT": ("flower", 15556),
        "MAILPIT_UI_HOST_PORT": ("mailpit", 18025),
        "MAILPIT_SMTP_HOST_PORT": ("mailpit", 11025),
    }
    result = compose(tmp_path, "--profile", "flower", "config", extra={k: str(port) for k, (_, port) in variables.items()})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    published = {port: name for name, service in services.items() for _, port in _host_ports(service)}
    assert published == {port: name for name, port in variables.values()}
    # links shown to users follow the published api-server
    assert services["monitor"]["environment"]["ADCLICK_AIRFLOW_UI_URL"] == "http://localhost:18080"


def _project_image_services(resolved: dict) -> dict[str, dict]:
    reference = resolved["services"]["airflow-scheduler"]["image"]
    return {name: s for name, s in resolved["services"].items() if s["image"] == reference}


def _mounts(service: dict) -> dict[str, str]:
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            mounts[target] = source
    return mounts


def test_every_service_of_the_project_image_reads_the_same_settings(resolved):
    services = _project_image_services(resolved)
    assert AIRFLOW_SERVICES | {"monitor"} <= set(services)
    worker = services["airflow-worker"]["environment"]
    settings = set(_env_file_keys({"env_file": ["config/compose.env"]}))
    for name, service in services.items():
        env = service["environment"]
        missing = settings - set(env)
        assert not missing, f"{name} lacks {sorted(missing)} of config/compose.env (env_file)"
        # the project's own variables: the same Airflow, the same credentials, the same monitor
        project = {k: v for k, v in worker.items() if k.startswith("ADCLICK_")}
        differing = sorted(k for k in project if env.get(k) != project[k])
        assert not differing, f"{name}: {differing} differ from the worker's or are missing"


def test_monitor_sees_the_registry_and_the_pipelines(resolved):
    # /api/predict and /models read the registry that the pipeline files locate (training.model_dir,
    # relative to ADCLICK_OPS_HOME): both must be where the workers write and read them.
    monitor = resolved["services"]["monitor"]
    env = monitor["environment"]
    home = env["ADCLICK_OPS_HOME"]
    mounts = _mounts(monitor)
    assert mounts.get(env["ADCLICK_OPS_PIPELINES"]) == str(PROJECT / "pipelines")
    worker_mounts = _mounts(resolved["services"]["airflow-worker"])
    for path in sorted((PROJECT / "pipelines").glob("*.yaml")):
        for dag_id, dag in (yaml.safe_load(path.read_text()) or {}).items():
            model_dir = (dag.get("training") or {}).get("model_dir") if isinstance(dag, dict) else None
            if model_dir is None or "://" in model_dir:
                continue
            target = f"{home}/{model_dir}"
            assert mounts.get(target) == worker_mounts.get(target) == str(PROJECT / model_dir), f"{dag_id}: {target} not shared"
    assert env["ADCLICK_AIRFLOW_URL"] == "http://airflow-apiserver:8080"
    assert env["ADCLICK_AIRFLOW_USER"] and env["ADCLICK_AIRFLOW_PASSWORD"]


def test_dockerfile_installs_the_lock_as_constraints():
    # A base image without celery would otherwise get the newest one, which the CeleryExecutor
    # may not import: every pip install of requirements must be constrained by the lock.
    text = (PROJECT / "Dockerfile").read_text().replace("\\\n", " ")
    installs = [line for line in text.splitlines() if re.match(r"RUN .*pip install", line)]
    with_requirements = [line for line in installs if "-r " in line]
    assert with_requirements, "the Dockerfile installs no requirements file"
    for line in with_requirements:
        assert re.search(r"(-c|--constraint)\s+\S*requirements\.lock\b", line), f"not constrained by the lock: {line}"
    copied = " ".join(line for line in text.splitlines() if line.startswith("COPY"))
    assert "requirements.lock" in copied, "the Dockerfile does not copy requirements.lock"
    ignore = (PROJECT / ".dockerignore").read_text().splitlines()
    assert "!requirements.lock" in ignore, ".dockerignore keeps requirements.lock out of the build context"


def _shell_checks(resolved: dict) -> list[tuple[str, str]]:
    checks = []
    for name, service in resolved["services"].items():
        test = service["healthcheck"]["test"]
        if test[0] == "CMD-SHELL":
            # `config` prints compose's escaping ($$); the engine receives a single $
            checks.append((name, test[1].replace("$$", "$")))
    return checks


def test_shell_health_checks_name_their_own_container_without_hostname_variable(resolved, tmp_path):
    # Run each CMD-SHELL check as an engine would, with HOSTNAME unset (some engines do not set it
    # for health-check processes), and the programs it calls replaced by recorders: the host name
    # they are given must be this container's.
    checks = _shell_checks(resolved)
    assert {name for name, _ in checks} >= {"airflow-worker", "airflow-dag-processor", "airflow-triggerer"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "args"
    for program in ("airflow", "celery"):
        stub = bin_dir / program
        stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
        stub.chmod(0o755)
    host = subprocess.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    for name, command in checks:
        record.unlink(missing_ok=True)
        result = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=30)
        if name == "pipeline-watch":
            # its check asks for the heartbeat file the watch touches at each look; no watch ran here, so it fails
            assert result.returncode != 0 and ".watch.alive" in command and "-mmin" in command, (name, command)
            continue
        assert result.returncode == 0, f"{name}: {result.stderr}"
        args = record.read_text().splitlines()
        if "--hostname" in args:
            assert args[args.index("--hostname") + 1] == host, f"{name} checks {args} instead of its own host {host}"
        elif "-d" in args:
            assert args[args.index("-d") + 1] == f"celery@{host}", f"{name} pings {args} instead of celery@{host}"
        else:
            raise AssertionError(f"{name}: the check names no host, so another container's success would do: {command}")


def test_compose_test_off_ci_without_podman_says_how_to_install(tmp_path):
    # `make compose-test` on a machine without the engine: the install command and a non-zero exit,
    # before anything is built or started.
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(tmp_path)  # no podman, no docker-compose, no runc
    result = subprocess.run(
        [sys.executable, str(PROJECT / "tests" / "compose" / "stack.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "apt-get install" in result.stderr and "podman" in result.stderr and "docker-compose" in result.stderr, result.stderr


def test_compose_test_asks_for_each_missing_package_even_when_podman_is_there(tmp_path):
    # podman may be installed without debootstrap (the stand-in base image's builder): each package is checked
    fake = tmp_path / "dpkg-query"
    fake.write_text(
        '#!/bin/sh\nfor last; do :; done\n[ "$last" = debootstrap ] && printf "unknown ok not-installed" || printf "install ok installed"\n'
    )
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = f"{tmp_path}:/usr/bin:/bin"
    result = subprocess.run(
        [sys.executable, str(PROJECT / "tests" / "compose" / "stack.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "compose-test needs Debian packages that are not installed: debootstrap.\n" in result.stderr, result.stderr
