"""The tests' shared helpers that are not fixtures (import them from here, never from a conftest.py).

This package is the one place for them: `tests.support` itself for the general ones, and a module each
for the Airflow API stub, throw-away git repositories, the registry's training chain, the hardening tally,
the browser driver, and the scripts that tests run in a subprocess (`dagbag_probe.py`, `onnx_mutations.py`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from email.message import Message
from pathlib import Path

import pytest
import requests
import yaml

from adclick_ops.embedded.mailsink import MailSink, smtp_connection_uri
from adclick_ops.net import free_port

__all__ = [
    "PROJECT",
    "SEED_TASKS",
    "MailSink",
    "body_text",
    "copy_pipelines",
    "edit_yaml",
    "evil_pickle",
    "free_port",
    "mail_sink_for",
    "mandatory_in_ci",
    "parse_dags",
    "run_airflow",
    "smtp_connection_uri",
    "training_settings",
    "wait_for_health",
]

PROJECT = Path(__file__).resolve().parents[2]
# The task ids of the shipped Airflow_Lab2, in the seed's order.
SEED_TASKS = (
    "load_data_task",
    "data_preprocessing_task",
    "separate_data_outputs_task",
    "build_save_model_task",
    "load_model_task",
    "send_email",
    "my_trigger_task",
)


@contextlib.contextmanager
def mail_sink_for(conn_id: str, monkeypatch: pytest.MonkeyPatch):
    """A MailSink that Airflow's SMTP connection `conn_id` points at, through AIRFLOW_CONN_* in the environment."""
    with MailSink() as server:
        for name, value in server.connection_env(conn_id).items():
            monkeypatch.setenv(name, value)
        yield server


def copy_pipelines(root: Path) -> Path:
    """A copy of pipelines/ in `root` whose training outputs go to `root`'s own folders; returns its path.

    The dataset stays `dags/data/advertising.csv`, relative to the project root: `root`, which gets a
    copy of it (`airflow_home` points $ADCLICK_OPS_HOME there too). A dataset outside the project is
    refused, so tests put their own data sets in the test's folder.
    """
    dest = root / "pipelines"
    shutil.copytree(PROJECT / "pipelines", dest)
    (root / "dags" / "data").mkdir(parents=True)
    shutil.copy(PROJECT / "dags" / "data" / "advertising.csv", root / "dags" / "data" / "advertising.csv")
    edit_yaml(
        dest / "airflow_lab2.yaml",
        lambda d: d["Airflow_Lab2"]["training"].update(model_dir=str(root / "model"), artifacts_root=str(root / "runs")),
    )
    return dest


class _RunsCommandWhenUnpickled:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_pickle(marker: Path) -> bytes:
    """A pickle that creates `marker` when it is loaded: a model file must never be unpickled."""
    return pickle.dumps(_RunsCommandWhenUnpickled(str(marker)))


def edit_yaml(path: Path, change) -> None:
    """Load a YAML file, let `change` edit the data in place, write it back."""
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run_airflow(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    from adclick_ops.embedded.stack import airflow

    return airflow(args, env, capture_output=True, text=True, timeout=timeout)


def mandatory_in_ci(reason: str) -> None:
    """Skip with `reason` on a box without the dependency; fail instead when CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def body_text(message: Message) -> str:
    """All text parts of a message, decoded."""
    parts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8"))
    return "\n".join(parts)


def training_settings(pipelines: Path, dag_id: str = "Airflow_Lab2") -> dict:
    """The `settings` op_kwarg that the training tasks of `dag_id` get when rendered from `pipelines`."""
    from adclick_ops.config import load_catalog
    from adclick_ops.factory import training_jobs

    return training_jobs(load_catalog(pipelines))[dag_id].model_dump(mode="json")


def wait_for_health(port: int, process: subprocess.Popen | None = None) -> dict:
    """GET /health of a monitor on the port once it answers (fails the test if `process` exits first)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        except requests.ConnectionError:
            if process is not None and process.poll() is not None:
                pytest.fail(f"the monitor exited early: {process.communicate()[0]}")
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def parse_dags(env: dict[str, str], dags: Path = PROJECT / "dags", cwd: Path | None = None) -> dict:
    """Parse `dags` in a subprocess as Airflow's DAG processor does (tests/support/dagbag_probe.py); its JSON report."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("dagbag_probe.py")), str(dags)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.split("@@", 1)[1])


def run_cli(*args: str | Path) -> tuple[int, str, str]:
    """`adclick-ops ARGS` in this process: (exit status, stdout, stderr); argparse's exits count as statuses."""
    from adclick_ops.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()
