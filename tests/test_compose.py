"""docker-compose.yaml, checked without a Docker engine: Debian's `docker-compose config` resolves it,
then the assertions hold the promises of docs/deployment.md (ports, profiles, shared settings, image).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from helpers import PROJECT, mandatory_in_ci

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


def compose(tmp_path: Path, *args: str, secrets: bool = True) -> subprocess.CompletedProcess:
    """`docker-compose <args>` on the project's file, with an env file of placeholder secrets.

    The caller's environment and any .env of the checkout are kept out, so the result depends on
    the committed files only.
    """
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{name}=placeholder-{name.lower()}\n" for name in SECRETS) if secrets else "")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith(("AIRFLOW", "COMPOSE_", "ADCLICK_OPS_IMAGE"))}
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
