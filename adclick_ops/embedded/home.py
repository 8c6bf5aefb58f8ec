"""What an embedded Airflow home tells other commands: where its running Airflow answers, and where its settings come from.

`adclick-ops run` writes `running.json` into the home while its Airflow is up, so that `adclick-ops
trigger` and `adclick-ops airflow` find that Airflow by its home alone. The home's `airflow.cfg`
is a note written here: Airflow reads it, but every setting it shows comes from the environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from adclick_ops import jsonio

STATE_FILE = "running.json"
CONFIG_MARK = "# adclick-ops:"
# Settings that are secrets: never copied into the note.
_SECRET_WORDS = ("SECRET", "FERNET", "PASSWORD", "CONN_")


@dataclass(frozen=True)
class Running:
    """The embedded Airflow that `adclick-ops run` keeps up for a home."""

    pid: int
    api_url: str
    api_port: int
    monitor_url: str | None
    env: dict[str, str]  # what the run command adds to the environment of its Airflow (the SMTP server, the monitor's port)


def write_running(home: Path, api_port: int, monitor_url: str | None, env: dict[str, str]) -> None:
    data = {"pid": os.getpid(), "api_url": f"http://localhost:{api_port}", "api_port": api_port, "monitor_url": monitor_url, "env": env}
    tmp = home / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(home / STATE_FILE)


def forget_running(home: Path) -> None:
    """Remove running.json, if it is this process's."""
    found = read_running(home, check_alive=False)
    if found is not None and found.pid == os.getpid():
        (home / STATE_FILE).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:  # kill(0 or -n) would ask about a process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_running(home: Path, check_alive: bool = True) -> Running | None:
    """The running embedded Airflow of `home`, or None: no run command wrote one, or it is gone (killed)."""
    try:
        data = jsonio.loads((home / STATE_FILE).read_bytes(), max_bytes=1 << 20)
        if not isinstance(data, dict):
            return None
        env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
        found = Running(int(data["pid"]), str(data["api_url"]), int(data["api_port"]), data.get("monitor_url"), env)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive and not _alive(found.pid):
        return None
    return found


def write_config_note(home: Path, env: dict[str, str]) -> None:
    """Write the home's airflow.cfg: a comment saying where the settings come from, and their values.

    Without it, the first Airflow command writes Airflow's defaults there (`dags_folder = <home>/dags`
    among them), which is not what runs: the environment overrides every one of those values.
    """
    settings: dict[str, dict[str, str]] = {}
    for key, value in sorted(env.items()):
        if not key.startswith("AIRFLOW__") or any(word in key for word in _SECRET_WORDS):
            continue
        section, _, option = key[len("AIRFLOW__") :].partition("__")
        if section and option:
            settings.setdefault(section.lower(), {})[option.lower()] = value.replace("%", "%%")
    lines = [
        f"{CONFIG_MARK} this file is written by adclick-ops at each start; edits here are lost and change nothing.",
        "# The embedded Airflow takes every setting from environment variables (AIRFLOW__SECTION__OPTION):",
        "# config/embedded.env of the project, unless the variable is set in your environment.",
        "# The values below are those in effect; secrets (jwt_secret, fernet_key) are kept in files of this home.",
        "# Run Airflow's CLI with this environment: adclick-ops airflow ARGS...",
    ]
    for section, options in settings.items():
        lines += ["", f"[{section}]"] + [f"{option} = {value}" for option, value in options.items()]
    text = "\n".join(lines) + "\n"
    path = home / "airflow.cfg"
    if path.exists() and not is_config_note(path):
        return  # a file of Airflow's or of a person: set aside (set_aside_config) before the note takes its place
    if not path.exists() or path.read_text(errors="replace") != text:
        tmp = home / ".airflow.cfg.tmp"
        tmp.write_text(text)
        tmp.replace(path)


def set_aside_config(home: Path) -> Path | None:
    """Rename an airflow.cfg that is not the note to airflow.cfg.<version>.bak, the version of Airflow that
    last used the home; the new name, or None when there was nothing to keep. Nothing is overwritten."""
    path = home / "airflow.cfg"
    if not path.exists() or is_config_note(path):
        return None
    stamp = home / ".airflow-version"
    version = (stamp.read_text().strip() if stamp.exists() else "") or "3.1"  # Airflow 3.1 homes have no stamp
    kept = home / f"airflow.cfg.{version.split()[0]}.bak"
    n = 1
    while kept.exists():
        kept, n = home / f"airflow.cfg.{version.split()[0]}.{n}.bak", n + 1
    path.replace(kept)
    return kept


def is_config_note(path: Path) -> bool:
    try:
        with open(path, errors="replace") as fh:
            return fh.readline().startswith(CONFIG_MARK)
    except OSError:
        return False
