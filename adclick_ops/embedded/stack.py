"""The embedded Airflow: an Airflow home inside the project, its environment, and its processes.

`config/embedded.env` holds the settings; this module fills in the paths and per-home secrets,
and starts or stops Airflow's components. Used by `adclick-ops run` and by the tests.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from adclick_ops.config.vocabulary import AIRFLOW_PORT
from adclick_ops.embedded.home import write_config_note

PROJECT = Path(__file__).resolve().parents[2]
ENV_TEMPLATE = PROJECT / "config" / "embedded.env"
ADMIN_USER, ADMIN_PASSWORD = "airflow", "airflow"  # development default, printed by the run command


# Airflow signs its JWTs (API tokens, the log server's requests) with HS512, whose key must be at least
# as long as its 512-bit hash (RFC 7518, 3.2): PyJWT warns (InsecureKeyLengthWarning) below 64 bytes.
HMAC_KEY_BYTES = 64
SECRETS = {
    # name: (make, the shortest kept value in bytes; a shorter one, from an older version, is replaced)
    "jwt_secret": (lambda: secrets.token_urlsafe(HMAC_KEY_BYTES), HMAC_KEY_BYTES),
    "api_secret_key": (lambda: secrets.token_urlsafe(HMAC_KEY_BYTES), HMAC_KEY_BYTES),
    # a Fernet key is 32 random bytes, base64: exactly its format's size
    "fernet_key": (lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(), 44),
}
# the setting each secret file of the Airflow home fills in
_SETTING_OF = {
    "jwt_secret": "AIRFLOW__API_AUTH__JWT_SECRET",
    "api_secret_key": "AIRFLOW__API__SECRET_KEY",
    "fernet_key": "AIRFLOW__CORE__FERNET_KEY",
}


def _secret(home: Path, name: str) -> str:
    make, shortest = SECRETS[name]
    path = home / f".{name}"
    if not path.exists() or len(path.read_bytes().strip()) < shortest:
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(home: Path, project: Path = PROJECT, api_port: int = AIRFLOW_PORT, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Airflow commands on the embedded default, with `home` as AIRFLOW_HOME.

    Values of config/embedded.env apply unless the variable is already set in the environment.
    """
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    generated = {key: _secret(home, name) for name, key in _SETTING_OF.items()}
    env = dict(os.environ)
    for raw in ENV_TEMPLATE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if key in os.environ:  # the caller's environment overrides the file
            continue
        if value == "{generated}":
            value = generated[key]
        env[key] = value.format(project=project.resolve(), airflow_home=home, api_port=api_port)
    env["AIRFLOW_HOME"] = str(home)
    passwords = home / "passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    # config/airflow_local_settings.py: the scheduler preloads what the task processes parse (adclick_ops.preload)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project.resolve() / "config"), env.get("PYTHONPATH")]))
    env.update(extra or {})
    write_config_note(home, env)  # else Airflow writes its defaults there, which are not what runs
    return env


def airflow(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    exe = shutil.which("airflow", path=env["PATH"]) or "airflow"
    return subprocess.run([exe, *args], env=env, **kwargs)


# Run argv[2:] with prctl(PR_SET_PDEATHSIG, SIGTERM) set, unless the parent (argv[1]) is gone already.
# (subprocess's preexec_fn would do it in the child before exec, but is unsafe in a process with threads.)
_EXEC_TIED_TO_PARENT = """
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM) != 0 or os.getppid() != int(sys.argv[1]):
    sys.exit("the command that started this process is gone" if os.getppid() != int(sys.argv[1]) else "prctl failed")
os.execvp(sys.argv[2], sys.argv[2:])
"""


# The components that start a log server of their own (`--skip-serve-logs` turns it off), by the
# [logging] option of its port, and the ports' defaults in Airflow 3.3.
_SERVES_LOGS = {"scheduler": "worker_log_server_port", "triggerer": "trigger_log_server_port"}
_LOG_PORTS = {"worker_log_server_port": 8793, "trigger_log_server_port": 8794}


@dataclass
class Stack:
    """Airflow's components as child processes, each logging to a file of the Airflow home."""

    env: dict[str, str]
    home: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_process(self, name: str, argv: list[str]) -> None:
        """Start `argv` in a session of its own, logging to <home>/<name>.log.

        On Linux the process gets SIGTERM when this one dies, however it dies (even by SIGKILL):
        a component never outlives the command that started it.
        """
        if sys.platform.startswith("linux"):
            argv = [sys.executable, "-c", _EXEC_TIED_TO_PARENT, str(os.getpid()), *argv]
        # The child keeps its own copy of the descriptor; this process needs none.
        with open(self.home / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, name: str, args: list[str]) -> None:
        """Start an Airflow command (`airflow <args>`)."""
        self.start_process(name, [shutil.which("airflow", path=self.env["PATH"]) or "airflow", *args])

    def start_airflow(self, components=("api-server", "scheduler", "dag-processor", "triggerer")) -> list[str]:
        """Start Airflow's components; the log servers of the scheduler and the triggerer run on their
        own (embedded.logserver), on the loopback interface unless configured otherwise. Returns what
        was not started, and why."""
        for component in components:
            self.start(component, [component, "--skip-serve-logs"] if component in _SERVES_LOGS else [component])
        return self.start_log_servers([_SERVES_LOGS[c] for c in components if c in _SERVES_LOGS])

    def start_log_servers(self, options: list[str]) -> list[str]:
        from adclick_ops.embedded.logserver import host
        from adclick_ops.net import bind_error

        skipped = []
        for option in options:
            port = int(self.env.get(f"AIRFLOW__LOGGING__{option.upper()}", _LOG_PORTS[option]))
            problem = bind_error(port, host())
            if problem is not None:  # as Airflow's own log server would: the rest of the stack runs without it
                skipped.append(f"the task-log server was not started: {host()}:{port}: {problem.strerror or problem}")
                continue
            name = option.removesuffix("_server_port").replace("_", "-")
            self.start_process(name, [sys.executable, "-m", "adclick_ops.embedded.logserver", str(port)])
        return skipped

    def dead(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def log_path(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def how_ended(self, name: str) -> str:
        """How a stopped process ended, in words: "exited with code 1", "was killed by SIGKILL"."""
        code = self.processes[name].poll()
        if code is None:
            return "is running"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def stop(self, timeout: float = 20) -> None:
        """Stop every process started here, with all of its own children (each leads a process group).

        SIGTERM to each group, then SIGKILL to any group with a member left after `timeout` seconds.
        Ctrl-C and SIGTERM are held off meanwhile: a second Ctrl-C must not leave half the stack running.
        """
        held = _hold_signals()
        try:
            groups = [p.pid for p in self.processes.values()]
            for pgid in groups:
                _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for p in self.processes.values():
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            # a leader may be gone while processes it started are still stopping
            while any(_group_alive(g) for g in groups) and time.monotonic() < deadline:
                time.sleep(0.1)
            for pgid in groups:
                if _group_alive(pgid):
                    _signal_group(pgid, signal.SIGKILL)
            for p in self.processes.values():
                p.wait()
        finally:
            _restore_signals(held)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _hold_signals() -> dict[int, object] | None:
    """Ignore SIGINT and SIGTERM (main thread only); the previous handlers, to restore."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(held: dict[int, object] | None) -> None:
    for sig, handler in (held or {}).items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def watch_parent(on_gone, interval: float = 0.5) -> None:
    """Call `on_gone()` once, from a daemon thread, when this process's parent stops or is being stopped.

    `make run` is the parent of `adclick-ops run`. GNU make passes a SIGTERM on to its children, but
    on SIGINT (or SIGHUP, SIGQUIT) sent to make alone, it only waits for them to end: the signal's
    handler then runs with that signal blocked, which /proc/<make>/status shows (SigBlk). The parent
    gone (killed, its child reparented) means the same: nobody waits for this run any more.
    """
    import threading

    parent = os.getppid()
    fatal = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}

    def parent_is_stopping() -> bool:
        if os.getppid() != parent:
            return True
        try:
            status = Path(f"/proc/{parent}/status").read_text()
        except OSError:
            return False  # no /proc here: only the parent's death is seen
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Name", "").strip() not in ("make", "gmake"):
            return False
        blocked = int(fields.get("SigBlk", "0").strip() or "0", 16)
        return any(blocked & (1 << (sig - 1)) for sig in fatal)

    def watch() -> None:
        while not parent_is_stopping():
            time.sleep(interval)
        on_gone()

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
