"""`adclick-ops trigger`: start a run of a DAG through the running Airflow's REST API and, if asked, follow it to its end.

The embedded Airflow that `adclick-ops run` keeps up is found through its home; any other Airflow
is named by URL, with the monitor's credentials. Following reuses what `adclick-ops run` prints.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adclick_ops.airflow_api import AirflowClient, AirflowError, AirflowNotFound
from adclick_ops.config.vocabulary import ENV_AIRFLOW_URL

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_NOT_TRIGGERED = 0, 1, 2
ENV_USER, ENV_PASSWORD = "ADCLICK_AIRFLOW_USER", "ADCLICK_AIRFLOW_PASSWORD"
NOTE = "triggered by adclick-ops trigger"


class TriggerError(Exception):
    """The run could not be triggered; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    client: AirflowClient
    base: str  # the Airflow UI, for links
    mail_dir: Path | None  # where the embedded SMTP server keeps e-mails


def parse_conf(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        conf = json.loads(text)
    except ValueError as exc:
        raise TriggerError(f"--conf is not JSON: {exc}") from None
    if not isinstance(conf, dict):
        raise TriggerError(f"--conf must be a JSON object ({{...}}), got {type(conf).__name__}: {text[:80]}")
    return conf


def locate(home: Path, airflow_url: str | None) -> Target:
    """The Airflow to talk to: --airflow-url (or $ADCLICK_AIRFLOW_URL) with the monitor's credentials,
    else the embedded Airflow that `adclick-ops run` keeps up for `home`."""
    from adclick_ops.embedded.home import STATE_FILE, read_running

    url = airflow_url or os.environ.get(ENV_AIRFLOW_URL)
    if url:
        user, password = os.environ.get(ENV_USER) or "airflow", os.environ.get(ENV_PASSWORD) or "airflow"
        client = AirflowClient(url, user, password, read_timeout=10, retry_server_errors_for=30)
        return Target(client, client.base_url, None)
    from adclick_ops.embedded.stack import ADMIN_PASSWORD, ADMIN_USER

    home = home.resolve()
    running = read_running(home)
    if running is None:
        raise TriggerError(
            f"no embedded Airflow is running for {home} (`make run` writes {home / STATE_FILE} while it runs); "
            f"start it with `make run`, or name another Airflow with --airflow-url and {ENV_USER}/{ENV_PASSWORD}"
        )
    client = AirflowClient(running.api_url, ADMIN_USER, ADMIN_PASSWORD, read_timeout=10, retry_server_errors_for=30)
    return Target(client, running.api_url, home.parent / "mail")


def _dag_ids(client: AirflowClient) -> list[str]:
    try:
        body = client.call("GET", "/dags", limit=100)
    except AirflowError:
        return []
    return sorted(d["dag_id"] for d in (body or {}).get("dags", []) if isinstance(d, dict) and isinstance(d.get("dag_id"), str))


def trigger_run(dag_id: str, conf: dict[str, Any] | None, wait: bool, target: Target, timeout: float) -> int:
    """Trigger `dag_id`; with `wait`, follow it and summarize it. The exit status: 0 succeeded (or triggered), 1 failed."""
    from adclick_ops.embedded.run import _quoted, _run_exists, _say, follow_run, summarize, trigger

    client, base = target.client, target.base
    try:
        dag = client.call("GET", f"/dags/{_quoted(dag_id)}")
    except AirflowNotFound:
        known = _dag_ids(client)
        raise TriggerError(
            f"Airflow at {client.base_url} has no DAG {dag_id!r}" + (f"; it has: {', '.join(known)}" if known else " (not parsed yet?)")
        ) from None
    except AirflowError as exc:
        raise TriggerError(f"cannot reach Airflow to trigger {dag_id}: {exc.reason}") from None
    try:
        run_id = trigger(client, dag_id, NOTE, conf=conf)
        if not _run_exists(client, dag_id, run_id):
            raise TriggerError(f"Airflow did not create the run {run_id} of {dag_id}")
        if dag.get("is_paused"):
            client.call("PATCH", f"/dags/{_quoted(dag_id)}", body={"is_paused": False})
            _say(f"{dag_id} was paused: unpaused, so that this run starts (schedule: {dag.get('timetable_summary') or 'none'})")
    except AirflowError as exc:
        raise TriggerError(f"cannot trigger {dag_id}: {exc.reason}") from None
    _say(f"Triggered {dag_id}: {run_id}")
    _say(f"Airflow UI: {base}/dags/{_quoted(dag_id)}/runs/{_quoted(run_id)}")
    if not wait:
        return EXIT_SUCCEEDED
    try:
        state = follow_run(client, dag_id, run_id, None, base, timeout=timeout)
        summarize(client, dag_id, run_id, state, base, target.mail_dir)
    except AirflowError as exc:
        print(f"adclick-ops trigger: lost Airflow while following {run_id}: {exc.reason}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say(f"Stopped following {run_id}; the run goes on in Airflow")
        raise
    if state == "timed out":
        _say(f"{run_id} has not ended after {timeout:g} s; it goes on in Airflow")
    return EXIT_SUCCEEDED if state == "success" else EXIT_FAILED
