"""The main job on the embedded default: Airflow with SQLite and the LocalExecutor, no Docker.

`run_forever` starts Airflow's components and the monitor, triggers Airflow_Lab2, follows it to the
end, prints the metrics and the URLs and keeps everything up until Ctrl-C. `run_once` is the
headless form for scripts: one `airflow dags test` run, exit status 1 when a task failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adclick_ops import jsonio
from adclick_ops.airflow_api import AirflowClient, AirflowError, AirflowUnreachable
from adclick_ops.config.vocabulary import (
    AIRFLOW_PORT,
    ENV_AIRFLOW_URL,
    ENV_MONITOR_PORT,
    METRICS,
    MONITOR_DAG_ID,
    MONITOR_PORT,
    TRAINING_DAG_ID,
)
from adclick_ops.embedded.home import forget_running, set_aside_config, write_config_note, write_running
from adclick_ops.embedded.mailsink import MailSink
from adclick_ops.embedded.stack import ADMIN_PASSWORD, ADMIN_USER, Stack, airflow, airflow_env, watch_parent
from adclick_ops.net import port_is_free
from adclick_ops.record import RecordUnreadable, TrainingRecord
from adclick_ops.steps.promotion import IDENTICAL

DAG_ID = TRAINING_DAG_ID
UNANSWERED_FOR = 60  # seconds Airflow may leave a run's follower without an answer before it gives up


def _use_sink(env: dict[str, str], sink: MailSink) -> None:
    """Point smtp_default at the local sink, unless the user set a connection of their own."""
    if "AIRFLOW_CONN_SMTP_DEFAULT" in os.environ:
        _say("E-mail: using the smtp_default connection from the environment")
    else:
        env.update(sink.connection_env())
        _say(f"E-mail: a local SMTP server on 127.0.0.1:{sink.port} saves messages in {sink.folder}")


def _say(text: str) -> None:
    print(text, flush=True)


def _retire_old_config(home: Path, version: str) -> None:
    """Set aside an airflow.cfg that Airflow (or a person) wrote into this home; the note of home.py takes its place.

    Airflow up to 3.1 wrote its full default configuration there at first start; 3.3 writes it too
    when the file is missing, with `dags_folder = <home>/dags` and other values that are not what
    runs, and warns at every task about the options it renamed since. Every setting of the embedded
    Airflow comes from the environment (config/embedded.env), so the file is only kept, renamed.
    """
    stamp = home / ".airflow-version"
    old = stamp.read_text().strip() if stamp.exists() else "3.1 or older"
    kept = set_aside_config(home)
    if kept is None:
        return
    if old != version:
        _say(f"Airflow {version} replaces the Airflow {old} of {home}: its airflow.cfg is kept as {kept.name}")
    else:
        _say(f"{home / 'airflow.cfg'} held values that are not the settings in effect: kept as {kept.name}")


def _migrate(env: dict[str, str], home: Path) -> None:
    """Create or upgrade the metadata database: a home made by an older Airflow is migrated in place."""
    from importlib.metadata import version as installed

    version = installed("apache-airflow-core")
    _retire_old_config(home, version)
    write_config_note(home, env)
    _say(f"Preparing the Airflow metadata database in {home} ...")
    with open(home / "migrate.log", "wb") as log:
        result = airflow(["db", "migrate"], env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"airflow db migrate failed; see {home / 'migrate.log'}")
    (home / ".airflow-version").write_text(version + "\n")


def _metrics_line(record: TrainingRecord) -> str:
    return "  ".join(f"{k}={value:.4f}" for k in METRICS if (value := getattr(record, k)) is not None)


def _say_record(value: Any, missing: str = "") -> None:
    """What a run's record says, read by TrainingRecord.parse: the metrics, the version trained, the decision with
    its reason, and the champion; "no metrics for this run" when there is none, and why a record cannot be read."""
    try:
        record = TrainingRecord.parse(value)
    except RecordUnreadable as exc:
        _say(f"no metrics for this run: {exc}")
        return
    if record is None:  # the run may have failed before evaluation, or at the promotion gate (said above)
        _say(f"no metrics for this run{missing}")
        return
    _say(f"metrics: {_metrics_line(record)}")
    if record.model_version is None:
        _say(f"model:   {record.model_path}")
        return
    what = "trained" if record.decision_kind != IDENTICAL else "trained again (an identical model: no new version)"
    _say(f"version: v{record.model_version} {what}")
    if record.decision:
        _say(f"decision: {record.decision}")
    champion = f"v{record.champion_version}" if record.champion_version is not None else "none"
    moved = f" (was v{record.previous_champion_version})" if record.promoted and record.previous_champion_version is not None else ""
    _say(f"champion: {champion}{moved}, served from {record.model_path}")


def _latest_metrics(since: float) -> dict[str, Any] | None:
    """metrics.json written by load_model_task during this run (newest first)."""
    from adclick_ops.artifacts import as_path
    from adclick_ops.config import load_catalog, project_root
    from adclick_ops.factory import training_job

    catalog = load_catalog()
    if DAG_ID not in catalog.dags:  # its pipeline file is invalid: the run printed why
        return None
    job = training_job(DAG_ID, catalog.dags[DAG_ID], project_root(catalog))
    folder = as_path(job.artifacts_root) / DAG_ID
    candidates = [p for p in folder.glob("*/metrics.json") if p.stat().st_mtime >= since]
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    try:
        return jsonio.load_bytes(newest.read_bytes(), str(newest), strict_numbers=False)
    except ValueError as exc:
        _say(f"metrics not shown: {exc}")
        return None


def run_once(home: Path) -> int:
    """One run of Airflow_Lab2 through `airflow dags test`; returns 0 when every task succeeded."""
    home = home.resolve()
    env = airflow_env(home)
    mail_dir = home.parent / "mail"
    with MailSink(mail_dir) as sink:
        _use_sink(env, sink)
        _migrate(env, home)
        _say(f"Running {DAG_ID} with `airflow dags test` (log: {home / 'dags-test.log'}) ...")
        started = time.time()
        states: dict[str, str] = {}
        last_state = "unknown"
        with open(home / "dags-test.log", "w") as log:
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "airflow"), "dags", "test", DAG_ID],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if "Task instance state updated" in line and "new_state=" in line:
                    last_state = line.split("new_state=", 1)[1].split()[0]
                if "[DAG TEST] end task" in line and "task_id=" in line:
                    task = line.split("task_id=", 1)[1].split()[0]
                    states[task] = last_state
                    _say(f"  {task:<28} {last_state}")
                if "DagRun Finished" in line:
                    final = line.split("state=", 1)[1].split(",")[0].strip() if "state=" in line else "unknown"
                    states["__run__"] = final
            proc.wait()
            proc.stdout.close()
        run_state = states.get("__run__", "unknown")
        _say(f"{DAG_ID}: run {run_state} in {time.time() - started:.0f} s")
        metrics = _latest_metrics(started)
        if metrics is not None:
            _say_record(metrics)
        emails = sorted(p for p in mail_dir.glob("*.eml") if p.stat().st_mtime >= started)
        for p in emails:
            _say(f"e-mail:  {p}")
    if proc.returncode != 0 or run_state != "success":
        _say(f"the run did not succeed; see {home / 'dags-test.log'}")
        return 1
    return 0


def connect(base: str, stack: Stack, deadline: float) -> AirflowClient:
    """A client of the API server once it answers and has let the admin user in."""
    # On SQLite, a write of the API server waits at most 5 s for the scheduler's and the DAG
    # processor's writes, then answers 500 ("database is locked"); a moment later it succeeds.
    client = AirflowClient(base, ADMIN_USER, ADMIN_PASSWORD, read_timeout=10, retry_server_errors_for=30)
    while time.monotonic() < deadline:
        _stop_if_dead(stack)
        try:
            client.health()
            client.call("GET", "/version")  # logs in: bad credentials fail here, not mid-run
            return client
        except AirflowError:
            time.sleep(1)
    raise SystemExit("the Airflow API server did not come up; see .airflow/api-server.log")


CLOCKS_AGREE_WITHIN = 2.0  # seconds between the server's clock and ours for _due_at_once to trust both


def _due_at_once(api: AirflowClient) -> str | None:
    """run_after for a run that should start at once: the last microsecond before the current second.

    Airflow's scheduler starts a queued run once run_after <= now() of its database, and SQLite's now()
    counts whole seconds. With run_after left to the api-server (its clock, to the microsecond), a
    run on the embedded default waited up to a second before its first task (docs/performance.md,
    "The first task's wait"). The second is the earlier of the server's (from the Date header of its
    latest answer) and ours, so the run is never due later than either clock says. When the clocks
    disagree by more than CLOCKS_AGREE_WITHIN seconds, or the server's is unknown, it is None and
    Airflow's own default holds, so a wrong clock on either side never delays a run.
    """
    server = api.server_time()
    if server is None:
        return None
    ours = datetime.now(UTC).replace(microsecond=0)
    if abs((ours - server).total_seconds()) > CLOCKS_AGREE_WITHIN:
        return None
    return (min(server, ours) - timedelta(microseconds=1)).isoformat()


def trigger(api: AirflowClient, dag_id: str, note: str, logical_date: str | None = None, conf: dict[str, Any] | None = None) -> str:
    """Trigger a run under an id of our own, so that a retried request cannot start a second run."""
    run_id = f"manual__{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}__{os.urandom(4).hex()}"
    body: dict[str, Any] = {"dag_run_id": run_id, "logical_date": logical_date, "note": note}
    run_after = _due_at_once(api)
    if run_after is not None:
        body["run_after"] = run_after
    if conf:
        body["conf"] = conf
    # A 409 follows a retry whose first try did create the run (the id is ours), or a run that
    # already holds this logical date: the caller checks which.
    api.call("POST", f"/dags/{_quoted(dag_id)}/dagRuns", body=body, accept=(409,))
    return run_id


def _quoted(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def _run_exists(api: AirflowClient, dag_id: str, run_id: str) -> bool:
    try:
        api.call("GET", f"/dags/{_quoted(dag_id)}/dagRuns/{_quoted(run_id)}")
    except AirflowError:
        return False
    return True


def _is_due(when: str | None) -> bool:
    """Whether a time of the API (ISO 8601) has come."""
    import datetime as dt

    if not when:
        return False
    try:
        moment = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment <= dt.datetime.now(dt.UTC)


def start_run(api: AirflowClient, dag_id: str, note: str) -> str:
    """The run of `dag_id` that the run command follows; everything the schedule adds is said.

    - A run already queued or running (the schedule's, or one triggered by hand) is followed, not
      doubled: with max_active_runs a second run would wait behind it, and send a second e-mail.
    - Otherwise a run is triggered. When the schedule has a run due (a scheduled DAG, unpaused for the
      first time, starts the latest interval at once), the triggered run takes that interval's logical
      date: Airflow's scheduler then counts the interval as run and starts no second run for it.
    - A paused DAG is unpaused, as its runs would not start otherwise; said once, with the schedule.
    """
    dag = api.call("GET", f"/dags/{dag_id}")
    schedule = dag.get("timetable_summary") or "none"
    active = [r for r in api.recent_runs(dag_id, 10) if r.get("state") in ("queued", "running")]
    if active:
        run = active[-1]  # the oldest of the active runs runs first
        _say(
            f"{dag_id} already has a {run.get('run_type') or ''} run {run['state']}: {run['dag_run_id']}; following it, not starting another"
        )
        if dag.get("is_paused"):
            api.call("PATCH", f"/dags/{dag_id}", body={"is_paused": False})
            _say(f"{dag_id} was paused: unpaused (schedule: {schedule})")
        return run["dag_run_id"]
    due = dag.get("next_dagrun_logical_date") if _is_due(dag.get("next_dagrun_run_after")) else None
    run_id = trigger(api, dag_id, note, logical_date=due)
    if due is not None and not _run_exists(api, dag_id, run_id):
        # a run holds that date already: the scheduler started it meanwhile
        active = [r for r in api.recent_runs(dag_id, 10) if r.get("state") in ("queued", "running")]
        if active:
            _say(f"{dag_id} started its {active[-1].get('run_type') or ''} run meanwhile: {active[-1]['dag_run_id']}; following it")
            return active[-1]["dag_run_id"]
        due, run_id = None, trigger(api, dag_id, note)
    if dag.get("is_paused"):
        api.call("PATCH", f"/dags/{dag_id}", body={"is_paused": False})
    _say(f"Triggered {dag_id}: {run_id}")
    if dag.get("is_paused"):
        _say(f"{dag_id} was paused: unpaused, so that this run starts (schedule: {schedule})")
    if due is not None:
        _say(f"This run is also the scheduled run due for {due}: the scheduler starts no second run for it")
    if schedule != "none" and dag.get("next_dagrun_run_after"):
        _say(f"{dag_id} keeps its schedule ({schedule}) while this command runs; pause it in the Airflow UI to stop scheduled runs")
    return run_id


DEAD_LOG_LINES = 20  # lines of a stopped component's log shown on the console


class ComponentStopped(SystemExit):
    """A component of the stack stopped by itself: the command stops the rest and exits 1 with one line on stderr."""


def _stop_if_dead(stack: Stack | None) -> None:
    if stack is not None and stack.dead():
        raise _component_stopped(stack)


def _component_stopped(stack: Stack) -> ComponentStopped:
    """Show the last lines of each stopped component's log (on stdout, as the rest of the console), and
    return the failure whose message is the one line that ends the command's stderr."""
    dead = stack.dead()
    for name in dead:
        tail = stack.log_tail(name, DEAD_LOG_LINES)
        if tail:
            _say(f"The last lines of {stack.log_path(name)}:")
            for line in tail.splitlines():
                _say(f"  {line}")
    what = "; ".join(f"{name} {stack.how_ended(name)} (its log: {stack.log_path(name)})" for name in dead)
    return ComponentStopped(f"adclick-ops run: {what}; the rest of the stack was stopped")


def failure_record(api: AirflowClient, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
    """The `failure` XCom that a failed try of the task pushed (adclick_ops.failures), or None."""
    try:
        entry = api.call("GET", f"/dags/{_quoted(dag_id)}/dagRuns/{_quoted(run_id)}/taskInstances/{_quoted(task_id)}/xcomEntries/failure")
    except AirflowError:
        return None
    value = entry.get("value") if isinstance(entry, dict) else None
    if isinstance(value, str):
        try:
            value = jsonio.loads(value, strict_numbers=False)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _log_link(base: str, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    from urllib.parse import quote

    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}?try_number={try_number}"


def _say_failure(api: AirflowClient, base: str, dag_id: str, run_id: str, ti: dict[str, Any], wait: bool = True) -> int:
    """What went wrong in a failed try, what Airflow does next, and where its log is; the try's number."""
    task_id = ti["task_id"]
    record = failure_record(api, dag_id, run_id, task_id)
    for _ in range(5 if wait else 0):  # a callback pushes it just after the state changed
        if record is not None and record.get("try_number") == ti.get("try_number"):
            break
        time.sleep(1)
        record = failure_record(api, dag_id, run_id, task_id) or record
    try_number = (record or {}).get("try_number") or ti.get("try_number") or 1
    if record is not None:
        retried = ti.get("state") == "up_for_retry"
        next_step = (
            "Airflow retries it"
            if retried
            else ("not retried: a retry would fail the same way" if not record.get("retryable") else "no tries left")
        )
        _say(f"    {record.get('kind')} error on try {try_number}: {record.get('error')} ({next_step})")
    _say(f"    log: {_log_link(base, dag_id, run_id, task_id, try_number)}")
    return int(try_number)


def follow_run(api: AirflowClient, dag_id: str, run_id: str, stack: Stack | None, base: str = "", timeout: float = 900) -> str:
    """Print task states as they change until the run ends, with each failed try; return the run's final state.

    A try that failed and was retried between two looks (a short retry_delay) is still said, with
    its log: its failure record is gone with the next try.
    """
    seen: dict[str, str] = {}
    said: dict[str, int] = {}  # by task, the tries whose end was said
    deadline = time.monotonic() + timeout
    silent_since: float | None = None
    while time.monotonic() < deadline:
        try:
            tis = api.call("GET", f"/dags/{_quoted(dag_id)}/dagRuns/{_quoted(run_id)}/taskInstances")["task_instances"]
        except AirflowUnreachable:
            # a busy machine or a moment's lock on SQLite: look again, unless Airflow stays silent for a minute
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since > UNANSWERED_FOR:
                raise
            _stop_if_dead(stack)
            time.sleep(2)
            continue
        silent_since = None
        for ti in tis:
            task_id, state, try_number = ti["task_id"], ti.get("state") or "none", int(ti.get("try_number") or 0)
            for earlier in range(said.get(task_id, 0) + 1, try_number):
                _say(f"  {task_id:<28} try {earlier} failed; Airflow retried it")
                _say(f"    log: {_log_link(base, dag_id, run_id, task_id, earlier)}")
            said[task_id] = max(said.get(task_id, 0), try_number - 1)
            if seen.get(task_id) != state:
                seen[task_id] = state
                _say(f"  {task_id:<28} {state}")
                if state in ("failed", "up_for_retry"):
                    said[task_id] = max(said[task_id], _say_failure(api, base, dag_id, run_id, ti))
        run = api.call("GET", f"/dags/{_quoted(dag_id)}/dagRuns/{_quoted(run_id)}")
        if run["state"] in ("success", "failed"):
            return run["state"]
        _stop_if_dead(stack)
        time.sleep(2)
    return "timed out"


def _downstream_state(api: AirflowClient, upstream_run_id: str, timeout: float = 120) -> str:
    """State of the monitor DAG's run that this run triggered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api.recent_runs(MONITOR_DAG_ID, 5)
        mine = [r for r in runs if (r.get("conf") or {}).get("upstream_run_id") == upstream_run_id]
        if mine and mine[0]["state"] in ("success", "failed"):
            return f"run {mine[0]['dag_run_id']} {mine[0]['state']}"
        time.sleep(2)
    return "not finished yet"


def _interrupt_on_sigterm() -> None:
    """`kill` stops the run like Ctrl-C does: Airflow's processes are stopped, not orphaned.

    So does a signal that `make run` received alone, and the death of the parent (stack.watch_parent).
    """
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
    watch_parent(lambda: os.kill(os.getpid(), signal.SIGTERM))


def _mentions(path: Path, text: str) -> bool:
    """Whether a saved e-mail says `text` in its subject or one of its text parts (decoded: bodies are base64)."""
    import email
    from email import policy

    try:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        parts = [str(message["Subject"] or "")]
        parts += [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]
    except (OSError, ValueError, LookupError):
        return False
    return any(text in part for part in parts)


def _watcher(env: dict[str, str]) -> Any:
    """What the DAG file renders: $ADCLICK_OPS_PIPELINES, else pipelines/ beside the DAGs folder."""
    from adclick_ops.pipeline_watch import PipelineWatch

    folder = env.get("ADCLICK_OPS_PIPELINES") or str(Path(env["AIRFLOW__CORE__DAGS_FOLDER"]).parent / "pipelines")
    return PipelineWatch(folder)


def _watch(watch: Any, env: dict[str, str]) -> None:
    """A line (and an e-mail to the pipeline's recipients) when a pipeline file breaks or heals (adclick_ops.pipeline_watch)."""
    from adclick_ops.pipeline_watch import tell

    tell(watch, env, _say)


def run_forever(home: Path, port: int = AIRFLOW_PORT) -> int:
    began = time.time()
    _interrupt_on_sigterm()
    home = home.resolve()
    if not port_is_free(port):
        raise SystemExit(f"port {port} is in use; stop what holds it or pass --port")
    env = airflow_env(home, api_port=port)
    mail_dir = home.parent / "mail"
    base = f"http://localhost:{port}"
    monitor_port = int(os.environ.get(ENV_MONITOR_PORT, MONITOR_PORT))
    # start_Flask_API (in the monitor DAG) looks for the monitor this command starts
    env.update({ENV_AIRFLOW_URL: base, ENV_MONITOR_PORT: str(monitor_port)})
    stack = Stack(env, home)
    try:
        with MailSink(mail_dir) as sink:
            _use_sink(env, sink)
            _migrate(env, home)
            _say("Starting Airflow: api-server, scheduler, dag-processor, triggerer ...")
            for problem in stack.start_airflow():
                _say(problem)
            if port_is_free(monitor_port):
                stack.start_process(
                    "monitor", [sys.executable, "-m", "adclick_ops.cli", "monitor", "--port", str(monitor_port), "--airflow-url", base]
                )
            else:
                _say(f"port {monitor_port} is in use: the monitor is not started ({ENV_MONITOR_PORT} chooses another)")
            api = connect(base, stack, time.monotonic() + 180)
            _say(f"Airflow UI: {base}  (login {ADMIN_USER} / {ADMIN_PASSWORD}, a development default)")
            deadline = time.monotonic() + 180
            while True:
                try:
                    api.call("GET", f"/dags/{DAG_ID}")
                    break
                except AirflowError:
                    _stop_if_dead(stack)
                    if time.monotonic() > deadline:
                        raise SystemExit(
                            f"{DAG_ID} was not parsed; run `adclick-ops validate` and see {home / 'dag-processor.log'}"
                        ) from None
                    time.sleep(2)
            watch = _watcher(env)
            _watch(watch, env)
            run_id = start_run(api, DAG_ID, "triggered by adclick-ops run")
            # `adclick-ops trigger` and `adclick-ops airflow` find this Airflow by its home
            added = {
                k: env[k] for k in (ENV_AIRFLOW_URL, ENV_MONITOR_PORT, "AIRFLOW_CONN_SMTP_DEFAULT") if k in env and k not in os.environ
            }
            write_running(home, port, f"http://localhost:{monitor_port}" if "monitor" in stack.processes else None, added)
            state = follow_run(api, DAG_ID, run_id, stack, base)
            summarize(api, DAG_ID, run_id, state, base, mail_dir)
            _say(f"{MONITOR_DAG_ID}: {_downstream_state(api, run_id)}")
            _say(f"Airflow UI: {base}/dags/{DAG_ID}")
            _say(f"Monitor:    http://localhost:{monitor_port}")
            _say("Everything keeps running; press Ctrl-C to stop.")
            _say(f"Run {DAG_ID} again: adclick-ops trigger --wait (or the Airflow UI); every run of it is reported here when it ends.")
            watch_runs(api, DAG_ID, stack, base, mail_dir, reported={run_id}, since=began, on_tick=lambda: _watch(watch, env))
            raise _component_stopped(stack)  # watch_runs returns only when a component stopped
    except KeyboardInterrupt:
        _say("Stopping ...")
        return 0
    finally:
        forget_running(home)
        _stop_and_say(stack)


def _stop_and_say(stack: Stack) -> None:
    """Stop every process of the stack and say which were stopped, then "stopped"."""
    running = {name: p.pid for name, p in stack.processes.items() if p.poll() is None}
    stack.stop()
    if running:
        _say("Stopped " + ", ".join(f"{name} (pid {pid})" for name, pid in running.items()) + "; the local SMTP server is closed.")
    _say("stopped")


def summarize(api: AirflowClient, dag_id: str, run_id: str, state: str, base: str, mail_dir: Path | None, failures: bool = False) -> None:
    """Say how a run ended: its state, with `failures` the failed tasks and why, then the metrics, the model
    version, the decision and its reason, and the e-mails that name the run."""
    _say(f"{dag_id} run {run_id}: {state}")
    if failures and state == "failed":
        _say_failed_tasks(api, base, dag_id, run_id)
    if dag_id != DAG_ID:
        return
    try:
        value, missing = api.run_metrics(dag_id, run_id), ""
    except AirflowError as exc:
        value, missing = None, f" ({exc.reason})"
    _say_record(value, missing)
    for p in sorted(mail_dir.glob("*.eml")) if mail_dir is not None else ():
        if _mentions(p, run_id):
            _say(f"e-mail:  {p}")


def _say_failed_tasks(api: AirflowClient, base: str, dag_id: str, run_id: str) -> None:
    try:
        tis = api.task_instances(dag_id, run_id)
    except AirflowError as exc:
        _say(f"  the failed tasks could not be read: {exc.reason}")
        tis = []
    for ti in tis:
        if ti.get("state") == "failed":
            _say(f"  {ti['task_id']:<28} failed")
            _say_failure(api, base, dag_id, run_id, ti, wait=False)


def _ended_before(run: dict[str, Any], moment: float) -> bool:
    import datetime as dt

    try:
        end = dt.datetime.fromisoformat(str(run.get("end_date")).replace("Z", "+00:00"))
    except ValueError:
        return False
    return (end if end.tzinfo else end.replace(tzinfo=dt.UTC)).timestamp() < moment


def watch_runs(
    api: AirflowClient,
    dag_id: str,
    stack: Stack | None,
    base: str,
    mail_dir: Path | None,
    reported: set[str],
    since: float,
    interval: float = 3,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Until a component of the stack stops: say each run of `dag_id` that starts, and summarize it when it ends.

    Runs from the UI, the CLI or the schedule alike; runs that ended before `since` (a time.time value),
    when this command started, are not said. `on_tick` runs once per look (the pipeline files' watch).
    """
    started: set[str] = set()
    while stack is None or not stack.dead():
        if on_tick is not None:
            on_tick()
        try:
            runs = api.recent_runs(dag_id, 20)
        except AirflowError:  # a moment's lock on SQLite, a restarting api-server: look again
            runs = []
        for run in reversed(runs):  # oldest first
            run_id, state = run["dag_run_id"], run.get("state")
            if run_id in reported:
                continue
            if state in ("success", "failed"):
                reported.add(run_id)
                if _ended_before(run, since):
                    continue
                note = f" ({run['note']})" if run.get("note") else ""
                _say(f"{dag_id}: the {run.get('run_type') or ''} run {run_id}{note} ended")
                summarize(api, dag_id, run_id, state, base, mail_dir, failures=True)
            elif run_id not in started:
                started.add(run_id)
                _say(f"{dag_id}: a {run.get('run_type') or ''} run started: {run_id} ({state})")
        time.sleep(interval)
