"""Security: YAML only through the safe reader, paths kept inside the project, models loaded only
from the model directory, and no secrets in the tracked files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from adclick_ops.artifacts import load_model_file
from adclick_ops.config.yamlio import YamlReadError, read_yaml

from tests.support import evil_pickle
from tests.support.hardening import PROJECT, count, edit_yaml


def marker_payloads(marker: Path) -> list[str]:
    command = f"touch {marker}"
    return [
        f"!!python/object/apply:os.system [{command!r}]\n",
        f"Airflow_Lab2: !!python/object/apply:os.system [{command!r}]\n",
        f"Airflow_Lab2:\n  description: !!python/object/apply:subprocess.check_call [[touch, {str(marker)!r}]]\n",
        f"? !!python/object/apply:os.system [{command!r}]\n: x\n",
        f"Airflow_Lab2:\n  tags: [!!python/object/new:os.system [{command!r}]]\n",
    ]


@pytest.mark.parametrize("n", range(5))
def test_python_tags_never_run_anything(tmp_path, n):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.yaml"
    path.write_text(marker_payloads(marker)[n])
    count("security: !!python tag payloads")
    with pytest.raises(YamlReadError) as info:
        read_yaml(path)
    assert str(info.value).startswith(f"{path}:")
    assert not marker.exists()


def test_python_tag_through_the_validate_command_in_a_subprocess(tmp_path):
    marker = tmp_path / "marker"
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "evil.yaml").write_text(marker_payloads(marker)[1])
    result = subprocess.run(
        [sys.executable, "-m", "adclick_ops.cli", "validate", str(folder)], capture_output=True, text=True, timeout=120, cwd=PROJECT
    )
    count("security: !!python tag payloads")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{folder / 'evil.yaml'}:1: " in result.stderr
    assert not marker.exists()


def test_the_package_uses_no_unsafe_yaml_loader():
    unsafe = re.compile(
        r"yaml\.(unsafe_load|full_load|load_all)\(|Loader\s*=\s*yaml\.(Loader|FullLoader|UnsafeLoader)|yaml\.load\((?![^)]*SafeLoader)"
    )
    hits = [
        f"{p}:{i}"
        for p in [*(PROJECT / "adclick_ops").rglob("*.py"), *(PROJECT / "dags").rglob("*.py")]
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if unsafe.search(line)
    ]
    assert hits == []


@pytest.mark.parametrize(
    "key,value",
    [
        ("dataset", "../advertising.csv"),
        ("dataset", "dags/../../etc/passwd"),
        ("dataset", "..\\..\\secrets.csv"),
        ("model_dir", "../model"),
        ("model_dir", "model/../../elsewhere"),
        ("artifacts_root", "runs/../../tmp"),
        ("artifacts_root", ".."),
        ("model_file", "../model.sav"),
        ("model_file", ".."),
        ("model_file", "sub/model.sav"),
    ],
)
def test_escapes_with_dot_dot_are_rejected_by_validate(key, value, pipelines, capsys):
    from adclick_ops.cli import main

    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update({key: value}))
    count("security: ../ escapes")
    assert main(["validate", str(pipelines)]) == 1
    err = capsys.readouterr().err
    assert f"{pipelines / 'airflow_lab2.yaml'}:" in err and f"Airflow_Lab2.training.{key}: " in err, err


@pytest.mark.parametrize("value", ["file://../outside", "file://dags/../../outside"])
def test_file_uri_escapes_are_rejected_by_validate(value, pipelines, capsys):
    """Found a bug: `file://` skips the `..` check, and as_path() then reads a path relative to the worker."""
    from adclick_ops.cli import main

    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["training"].update(dataset=value))
    count("security: ../ escapes")
    assert main(["validate", str(pipelines)]) == 1, "validate accepted " + value
    assert "Airflow_Lab2.training.dataset: " in capsys.readouterr().err


def test_models_load_only_from_the_model_directory(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    marker = tmp_path / "marker"
    evil = outside / "model.sav"
    evil.write_bytes(evil_pickle(marker))
    (model_dir / "link.sav").symlink_to(evil)
    for path in (evil, model_dir / ".." / "elsewhere" / "model.sav", model_dir / "link.sav"):
        count("security: model outside the model directory")
        with pytest.raises(PermissionError, match="models are loaded only from"):
            load_model_file(path, [model_dir])
    (model_dir / "linkdir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PermissionError):
        load_model_file(model_dir / "linkdir" / "model.sav", [model_dir])
    # inside the model directory, a pickle is refused for what it is
    (model_dir / "model.sav").write_bytes(evil_pickle(marker))
    with pytest.raises(ValueError, match="not an ONNX model file"):
        load_model_file(model_dir / "model.sav", [model_dir])
    assert not marker.exists()


# --- secrets in the tracked files ------------------------------------------------------------------

SEED_ADDRESS = "higha59" + "@" + "gmail" + ".com"  # the seed's personal address, in pieces so this file does not hold it
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_?secret_?access_?key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."),
    "credentials in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?!\$\{)[^/\s@'\"]{3,}@"),
}
SECRET_NAME = (
    r"[A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|FERNET_?KEY|SECRET_?KEY)(?![A-Za-z0-9_]*(?:FILE|PATH|S\b))"
)
# in any file: NAME = "literal", "name": "literal", name="literal"
QUOTED = re.compile(r"""(?i)\b(""" + SECRET_NAME + r""")['"]?\s*[:=]\s*(['"])([^'"]*)\2""")
# in settings files (.env, *.env, YAML, Dockerfile): NAME=value, NAME: value
PLAIN = re.compile(r"""(?i)^\s*-?\s*(""" + SECRET_NAME + r""")\s*[:=]\s*([^\s'"#]+)""")
SETTINGS_FILE = re.compile(r"(^|/)(\.env[^/]*|[^/]*\.env|[^/]*\.ya?ml|Dockerfile)$")
# The documented development defaults and placeholders (README, docs/deployment.md, .env.example).
ALLOWED_VALUES = {"", "airflow", "{generated}"}
# Fake credentials that tests hand to the stub Airflow API, and the placeholder login of docs/notifications.md.
ALLOWED_IN = {("tests/monitor/test_views.py", "wrong"), ("tests/monitor/test_views.py", "s3cret")}
ALLOWED_ADDRESS = re.compile(r"@(example\.(com|org|net)|sub\.example\.net|localhost|domain\.tld)$|^you@gmail\.com$")


def literal_secrets(rel: str, line: str) -> list[tuple[str, str]]:
    found = [(name, value) for name, _, value in QUOTED.findall(line)]
    if SETTINGS_FILE.search(rel):
        found += PLAIN.findall(line)
    return [(n, v) for n, v in found if not placeholder(v) and (rel, v) not in ALLOWED_IN]


def tracked_files() -> list[Path]:
    result = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=True)
    return [PROJECT / name for name in result.stdout.decode().split("\0") if name]


def placeholder(value: str) -> bool:
    return (
        value in ALLOWED_VALUES
        or value.startswith(("${", "$", "{", "<", "os.", "secrets.", "self.", "env", "get"))
        or value == ""
        or not re.search(r"[0-9]", value)
        and "(" in value
        or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\[\]]*", value)
        and not value.islower()
    )


def test_tracked_files_hold_no_secrets():
    files = tracked_files()
    assert len(files) > 20
    problems = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        count("security: tracked files scanned")
        rel = path.relative_to(PROJECT)
        if SEED_ADDRESS.lower() in text.lower():
            problems.append(f"{rel}: the seed's personal e-mail address")
        for i, line in enumerate(text.splitlines(), 1):
            for what, pattern in SECRET_PATTERNS.items():
                if pattern.search(line):
                    problems.append(f"{rel}:{i}: {what}")
            for name, value in literal_secrets(str(rel), line):
                problems.append(f"{rel}:{i}: {name} is given the literal value {value[:2]}...")
            for address in re.findall(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", line):
                if not ALLOWED_ADDRESS.search(address):
                    problems.append(f"{rel}:{i}: e-mail address {address} is not a documented example")
    assert problems == []


def test_the_secret_scan_finds_what_it_looks_for(tmp_path):
    """The scanner's patterns, tried on planted secrets (so that an always-green scan is caught)."""
    # built from pieces, so that this file itself passes the scan once it is tracked
    planted = [
        ("private key", "-----BEGIN " + "OPENSSH PRIVATE" + " KEY-----"),
        ("AWS access key id", "key = AKIA" + "ABCDEFGHIJKLMNOP"),
        ("GitHub token", "ghp" + "_" + "a" * 36),
        ("credentials in a URL", "postgresql://airflow" + ":" + "hunter22" + "@db/airflow"),
    ]
    for what, line in planted:
        assert SECRET_PATTERNS[what].search(line), what
    assert literal_secrets(".env", "POSTGRES_" + "PASSWORD=s3cr3t-Value") == [("POSTGRES_PASSWORD", "s3cr3t-Value")]
    assert literal_secrets("app.py", "api_token = " + '"abc123"') == [("api_token", "abc123")]
    assert literal_secrets("docker-compose.yaml", "  POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it}") == []
    assert literal_secrets(".env.example", "AIRFLOW_ADMIN_PASSWORD=airflow") == []
    assert literal_secrets("app.py", "passwords = home / 'passwords.json'") == []
    assert not ALLOWED_ADDRESS.search(SEED_ADDRESS)
