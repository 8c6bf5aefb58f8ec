"""The README's run command for real: Airflow's scheduler, dag-processor, api-server and triggerer,
the triggered monitor DAG, and the monitor reading the real Airflow REST API."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from tests.support import PROJECT, edit_yaml, free_port, smtp_connection_uri

pytestmark = pytest.mark.airflow


def wait_for_line(proc: subprocess.Popen, lines: list[str], pattern: str, timeout: float, each_line=None) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if each_line is not None:
            each_line()
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"{pattern!r} not seen; output:\n{''.join(lines)[-6000:]}")


def listening_sockets(root: int, seen: dict[tuple[str, int], str]) -> None:
    """Add every listening TCP/UDP socket of `root` and of all its descendants to `seen` ((ip, port) -> process)."""
    import psutil

    try:
        processes = [psutil.Process(root), *descendants(root)]
    except psutil.Error:
        return
    for p in processes:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr):
                    seen.setdefault((c.laddr.ip, c.laddr.port), " ".join(p.cmdline())[:160])
        except psutil.Error:  # ended meanwhile (a task's process)
            continue


def test_run_command_trains_triggers_the_monitor_dag_and_serves_the_monitor(tmp_path, pipelines):
    api_port, monitor_port, worker_logs, trigger_logs = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "ADCLICK_OPS_PIPELINES": str(pipelines),
        "ADCLICK_OPS_HOME": str(pipelines.parent),
        "ADCLICK_MONITOR_PORT": str(monitor_port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "adclick_ops.cli", "run", "--airflow-home", str(tmp_path / "airflow"), "--port", str(api_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    sockets: dict[tuple[str, int], str] = {}
    try:
        # every process the run starts, task processes included, is looked at while the run goes on
        wait_for_line(proc, lines, r"Everything keeps running", timeout=600, each_line=lambda: listening_sockets(proc.pid, sockets))
        listening_sockets(proc.pid, sockets)
        out = "".join(lines)
        # loopback only, and everything the run serves is among them: api-server, monitor, SMTP sink, log servers
        beyond = {addr: who for addr, who in sockets.items() if not ipaddress.ip_address(addr[0]).is_loopback}
        assert beyond == {}, beyond
        ports = {port for _, port in sockets}
        assert {api_port, monitor_port, worker_logs, trigger_logs} <= ports, sockets
        for port in (worker_logs, trigger_logs):  # served by the loopback log server, not by the scheduler or triggerer
            assert "adclick_ops.embedded.logserver" in sockets[("127.0.0.1", port)], sockets
        # the generated secrets are long enough for HS512: PyJWT never warns
        logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "airflow").rglob("*.log"))
        assert "InsecureKeyLengthWarning" not in out + logs
        # the scheduler, which forks the task processes, preloaded what they parse (adclick_ops.preload); no other component did
        components = {p.name: p.read_text(errors="replace") for p in (tmp_path / "airflow").glob("*.log")}
        assert [name for name, text in components.items() if "modules preloaded for the task processes" in text] == ["scheduler.log"]
        assert "modules not preloaded" not in logs
        assert all(len((tmp_path / "airflow" / f".{name}").read_text()) >= 64 for name in ("jwt_secret", "api_secret_key"))
        run_id = re.search(r"Triggered Airflow_Lab2: (\S+)", out).group(1)
        assert f"Airflow_Lab2 run {run_id}: success" in out
        # the first start says what the schedule does, and the schedule starts no second run
        assert "This run is also the scheduled run due for" in out and "Airflow_Lab2 was paused: unpaused" in out
        with sqlite3.connect(tmp_path / "airflow" / "airflow.db") as con:
            runs = con.execute("select run_id from dag_run where dag_id = 'Airflow_Lab2'").fetchall()
        assert runs == [(run_id,)]
        assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
        accuracy = float(re.search(r"metrics: accuracy=([0-9.]+)", out).group(1))
        assert accuracy >= 0.95
        assert re.search(r"Airflow_Lab2_Flask: run \S+ success", out), out
        assert re.search(r"e-mail:  .*\.eml", out)
        assert (tmp_path / "model" / "model.sav").exists()

        # the monitor started by the run command reads the real Airflow REST API
        base = f"http://127.0.0.1:{monitor_port}"
        health = requests.get(f"{base}/health", timeout=10).json()
        assert health["status"] == "ok"
        home = requests.get(f"{base}/", allow_redirects=False, timeout=10)
        assert home.status_code == 302 and home.headers["Location"].endswith("/success")
        page = requests.get(f"{base}/success", timeout=10).text
        assert run_id in page
        assert f"{accuracy:.4f}"[:5] in page  # e.g. 0.970

        check_the_terminal_loop(proc, lines, tmp_path / "airflow", api_port, env)
        break_and_heal(proc, lines, pipelines, tmp_path, base, f"http://127.0.0.1:{api_port}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc_rest = proc.communicate(timeout=60)[0].splitlines(keepends=True)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, "".join(lines)[-3000:]
    # every component was stopped, and the console says which, then "stopped"
    assert processes_of(tmp_path / "airflow") == []
    lines += proc_rest
    out = "".join(lines)
    for component in ("api-server", "scheduler", "dag-processor", "triggerer", "monitor"):
        assert re.search(rf"Stopped .*\b{component} \(pid \d+\)", out), out[-2000:]
    assert lines[-1] == "stopped\n", out[-2000:]
    assert not (tmp_path / "airflow" / "running.json").exists()


def adclick_ops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adclick_ops.cli", *args], env=env, capture_output=True, text=True, timeout=900)


def check_the_terminal_loop(proc: subprocess.Popen, lines: list[str], home, api_port: int, env: dict[str, str]) -> None:
    """While `adclick-ops run` is up: Airflow's CLI with its environment, another run triggered and followed from
    the terminal (found through the home alone), and the run command's console reporting that run when it ends."""
    from adclick_ops.airflow_api import AirflowClient

    # the home's airflow.cfg names the DAGs folder Airflow really parses, as Airflow's own CLI reports it
    cfg = (home / "airflow.cfg").read_text()
    assert cfg.startswith("# adclick-ops:") and "config/embedded.env" in cfg
    folder = adclick_ops("airflow", "--airflow-home", str(home), "config", "get-value", "core", "dags_folder", env=env)
    assert folder.returncode == 0, folder.stderr
    assert folder.stdout.strip() == str(PROJECT / "dags") and f"dags_folder = {PROJECT / 'dags'}\n" in cfg
    # the note leaves the secrets out: no setting of the [api_auth] or [core] secrets appears in it
    assert not re.search(r"^\s*(jwt_secret|fernet_key)\s*=", cfg, re.MULTILINE)

    first_run = re.search(r"Triggered Airflow_Lab2: (\S+)", "".join(lines)).group(1)
    wanted = adclick_ops("trigger", "NoSuchDag", "--airflow-home", str(home), env=env)
    assert wanted.returncode == 2 and "has no DAG 'NoSuchDag'; it has: Airflow_Lab2, Airflow_Lab2_Flask" in wanted.stderr, wanted

    done = adclick_ops("trigger", "--airflow-home", str(home), "--wait", "--conf", '{"reason": "new data"}', env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = re.search(r"Triggered Airflow_Lab2: (\S+)", done.stdout).group(1)
    for task in ("load_data_task", "build_save_model_task", "load_model_task", "send_email"):
        assert re.search(rf"^  {task} +success$", done.stdout, re.M), done.stdout
    assert f"Airflow_Lab2 run {run_id}: success" in done.stdout
    assert re.search(r"^metrics: accuracy=0\.\d{4} ", done.stdout, re.M), done.stdout
    # the same pipeline and data give the same model: the run is recorded against version 1, which stays champion
    assert re.search(r"^version: v1 trained again \(an identical model: no new version\)$", done.stdout, re.M), done.stdout
    assert re.search(
        r"^decision: not promoted: identical: run \S+ trained the model of version 1 \(run \S+\) again; it is the champion$",
        done.stdout,
        re.M,
    )
    assert re.search(r"^champion: v1, served from \S+model\.sav$", done.stdout, re.M), done.stdout
    assert re.search(r"^e-mail:  .*\.eml$", done.stdout, re.M), done.stdout
    client = AirflowClient(f"http://127.0.0.1:{api_port}", "airflow", "airflow", read_timeout=10)
    assert client.call("GET", f"/dags/Airflow_Lab2/dagRuns/{run_id}")["conf"] == {"reason": "new data"}
    # Both runs were due before the second they were queued in, as SQLite's now() (whole seconds) compares them
    # with run_after: the scheduler could start each at once instead of waiting for the next second.
    with sqlite3.connect(home / "airflow.db") as con:
        due = con.execute("select run_id, run_after < substr(queued_at, 1, 19) from dag_run where run_id in (?, ?)", (first_run, run_id))
        assert dict(due.fetchall()) == {first_run: 1, run_id: 1}

    # the run command did not start that run, and says how it ended, with the same summary
    wait_for_line(proc, lines, rf"Airflow_Lab2: the manual run {re.escape(run_id)} \(triggered by adclick-ops trigger\) ended", 120)
    wait_for_line(proc, lines, r"^decision: ", 60)
    said = "".join(lines)
    assert f"Airflow_Lab2 run {run_id}: success" in said and "version: v1 trained again" in said
    assert said.count(f"Airflow_Lab2 run {first_run}: success") == 1  # its own run is not said again

    # Airflow's CLI sees both runs in the same database
    listed = adclick_ops("airflow", "--airflow-home", str(home), "dags", "list-runs", "Airflow_Lab2", "-o", "plain", env=env)
    assert listed.returncode == 0 and run_id in listed.stdout and first_run in listed.stdout, listed


def poll(what: str, check, timeout: float, interval: float = 2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def break_and_heal(proc: subprocess.Popen, lines: list[str], pipelines, tmp_path, monitor: str, airflow_url: str) -> None:
    """A typo reaches the live deployment: the DAG goes on from the last valid version and everyone is told; fixed,
    everything follows the file again; deleted, the DAG goes."""
    from adclick_ops.airflow_api import AirflowClient, dag_details, import_errors

    api = AirflowClient(airflow_url, "airflow", "airflow", read_timeout=30, deadline=60)
    path = pipelines / "airflow_lab2.yaml"
    good = path.read_text()
    mails = set((tmp_path / "mail").glob("*.eml"))
    # a change of scalers that would run, with a misspelled field that makes the file invalid
    edit_yaml(path, lambda d: d["Airflow_Lab2"]["training"].update(scalers=["robust"], colour="blue"))
    wait_for_line(proc, lines, r"pipelines: .*airflow_lab2\.yaml does not validate; .*colour", timeout=60)
    wait_for_line(
        proc, lines, r"pipelines: e-mail to ml-team@example\.com: \[adclick-ops\] airflow_lab2\.yaml does not validate", timeout=60
    )
    alerts = set((tmp_path / "mail").glob("*.eml")) - mails
    assert len(alerts) == 1 and _mentions_text(next(iter(alerts)), "unknown field 'colour'")

    # Airflow: the DAG keeps its last valid version, tagged; the import error is filed under the pipeline file
    details = poll(
        "the last-good tag", lambda: (d := dag_details(api, "Airflow_Lab2")) and "last-good" in [t["name"] for t in d["tags"]] and d, 180
    )
    assert details["is_stale"] is False
    error = poll(
        "the import error of the pipeline file",
        lambda: next((e for e in import_errors(api) if e["filename"].endswith("airflow_lab2.yaml")), None),
        180,
    )
    assert "Airflow_Lab2.training.colour: unknown field 'colour'" in error["stack_trace"]
    assert "The last valid version of this file runs instead: Airflow_Lab2 from sha256" in error["stack_trace"]
    # the monitor: degraded health (still HTTP 200), the banner, and /api/status
    health = poll(
        "a degraded /health", lambda: (h := requests.get(f"{monitor}/health", timeout=10)).json()["status"] == "degraded" and h, 60
    )
    assert health.status_code == 200
    # each server process of the monitor asks Airflow on its own
    page = poll(
        "the banner", lambda: "The pipeline needs attention" in (t := requests.get(f"{monitor}/success", timeout=10).text) and t, 60
    )
    assert "The last valid version runs instead" in page
    # /api/status may be answered by the other server process, whose cache of Airflow's answers may be a moment older
    status = poll(
        "broken files in /api/status",
        lambda: (s := requests.get(f"{monitor}/api/status", timeout=10).json())["pipelines"]["broken_files"] and s,
        60,
    )
    assert status["pipelines"]["broken_files"][0]["last_good_runs"] is True

    # a triggered run succeeds, on the last valid settings
    run_id = api.call("POST", "/dags/Airflow_Lab2/dagRuns", body={"logical_date": None})["dag_run_id"]
    state = poll(
        f"run {run_id}",
        lambda: (r := api.call("GET", f"/dags/Airflow_Lab2/dagRuns/{run_id}"))["state"] in ("success", "failed") and r["state"],
        600,
        interval=3,
    )
    assert state == "success"
    metrics = api.run_metrics("Airflow_Lab2", run_id)
    assert metrics["scalers"] == ["minmax", "standard"]

    # fixed: a line, one heal e-mail, the tag and the banner go
    mails = set((tmp_path / "mail").glob("*.eml"))
    path.write_text(good)
    wait_for_line(proc, lines, r"pipelines: .*airflow_lab2\.yaml validates again", timeout=60)
    wait_for_line(proc, lines, r"pipelines: e-mail to ml-team@example\.com: \[adclick-ops\] airflow_lab2\.yaml validates again", timeout=60)
    poll("the tag to go", lambda: "last-good" not in [t["name"] for t in dag_details(api, "Airflow_Lab2")["tags"]], 180)
    poll("a healthy /health", lambda: requests.get(f"{monitor}/health", timeout=10).json()["status"] == "ok", 180)
    poll("the banner to go", lambda: "The pipeline needs attention" not in requests.get(f"{monitor}/success", timeout=10).text, 60)
    # one alert and one heal, whatever the number of parses meanwhile
    subjects = [p for p in (tmp_path / "mail").glob("*.eml") if _mentions_text(p, "[adclick-ops] airflow_lab2.yaml")]
    assert len(subjects) == 2, subjects

    # deleted on purpose: the DAG goes
    path.unlink()
    poll("Airflow_Lab2 to go", lambda: (d := dag_details(api, "Airflow_Lab2")) is None or d["is_stale"], 300, interval=5)


def _mentions_text(path, text: str) -> bool:
    from adclick_ops.embedded.run import _mentions

    return _mentions(path, text)


def processes_of(home) -> list[str]:
    """Processes still running for the Airflow home: those whose environment names it."""
    mine = f"AIRFLOW_HOME={home}".encode()
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if mine in fh.read().split(b"\0"):
                    with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                        argv = cmd.read().replace(b"\0", b" ").decode(errors="replace")
                    left.append(f"{pid}: {argv}")
        except OSError:  # gone meanwhile, or not ours
            continue
    return left


def descendants(pid: int) -> list:
    import psutil

    return psutil.Process(pid).children(recursive=True)


def command_lines(processes: list) -> str:
    import psutil

    out = []
    for p in processes:
        try:
            out.append(" ".join(p.cmdline()))
        except psutil.Error:  # ended meanwhile (a task's process), or a zombie
            continue
    return " ".join(out)


def kill_left(processes: list) -> None:
    """After a failed test: leave nothing running for the next tests."""
    import psutil

    for p in processes:
        try:
            p.kill()
        except psutil.Error:
            pass


def stop_and_check(proc: subprocess.Popen, sig: int, lines: list[str], home, started: list) -> None:
    """Send `sig` to `proc` alone; it must end, and take every process it started with it."""
    import psutil

    proc.send_signal(sig)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{proc.args[:4]} did not stop on {signal.Signals(sig).name}:\n{''.join(lines)[-3000:]}")
    _, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], f"left running: {alive}"
    assert processes_of(home) == []


def start_run_command(argv: list[str], tmp_path, pipelines, stderr=subprocess.STDOUT, **extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "ADCLICK_OPS_PIPELINES": str(pipelines),
        "ADCLICK_OPS_HOME": str(pipelines.parent),
        "ADCLICK_MONITOR_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)


@contextlib.contextmanager
def running(
    argv: list[str], tmp_path, pipelines, stderr=subprocess.STDOUT, **extra: str
) -> Iterator[tuple[subprocess.Popen, list[str], list]]:
    """The command started as `start_run_command` starts it, with the lines read from it and the processes it
    started (the test fills both); whatever the test asserts, nothing it started is left running after it."""
    proc = start_run_command(argv, tmp_path, pipelines, stderr, **extra)
    started: list = []
    try:
        yield proc, [], started
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_left(started)
        proc.stdout.close()


def test_sigterm_to_the_run_command_alone_stops_everything_it_started(tmp_path, pipelines):
    home = tmp_path / "airflow"
    argv = [sys.executable, "-m", "adclick_ops.cli", "run", "--airflow-home", str(home), "--port", str(free_port())]
    with running(argv, tmp_path, pipelines) as (proc, lines, started):
        # the run is triggered and its first task started: the scheduler runs it in processes of its own
        wait_for_line(proc, lines, r"Triggered Airflow_Lab2|already has|meanwhile", timeout=300)
        wait_for_line(proc, lines, r"load_data_task +(queued|running|success)", timeout=300)
        started[:] = descendants(proc.pid)
        names = command_lines(started)
        for component in ("api_server", "scheduler", "dag-processor", "triggerer", "adclick-monitor", "LocalExecutor"):
            assert component in names, names
        stop_and_check(proc, signal.SIGTERM, lines, home, started)
        assert proc.returncode == 0


def test_a_component_that_dies_ends_the_run_command_with_one_line_on_stderr(tmp_path, pipelines):
    """The scheduler killed while a run is followed: the command stops the rest of the stack, shows the end of
    the scheduler's log on stdout, and ends with one line on stderr naming it, how it ended and its log."""
    import psutil

    home = tmp_path / "airflow"
    argv = [sys.executable, "-m", "adclick_ops.cli", "run", "--airflow-home", str(home), "--port", str(free_port())]
    with open(tmp_path / "stderr.txt", "w+") as stderr, running(argv, tmp_path, pipelines, stderr=stderr) as (proc, lines, started):
        wait_for_line(proc, lines, r"Triggered Airflow_Lab2|already has|meanwhile", timeout=300)
        started[:] = descendants(proc.pid)
        # the command's own child (its task processes are the scheduler's children)
        (scheduler,) = [p for p in psutil.Process(proc.pid).children() if "scheduler" in " ".join(p.cmdline())]
        scheduler.kill()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run command did not stop after its scheduler was killed:\n{''.join(lines)[-3000:]}")
        lines += proc.stdout.readlines()
        _, alive = psutil.wait_procs(started, timeout=10)
        assert alive == [], f"left running: {alive}"
        assert processes_of(home) == []
        stderr.seek(0)
        err = stderr.read()
    out = "".join(lines)
    assert proc.returncode == 1, out[-3000:] + err
    log = home / "scheduler.log"
    # the last line of stderr says it all; no traceback, and nothing of the log tail on stderr
    assert err.endswith("\n") and err.splitlines()[-1] == (
        f"adclick-ops run: scheduler was killed by SIGKILL (its log: {log}); the rest of the stack was stopped"
    ), err[-3000:]
    assert "Traceback" not in err and "Traceback" not in out
    # the console shows the end of the scheduler's log, and what it stopped
    assert f"The last lines of {log}:\n" in out, out[-3000:]
    assert re.search(r"Stopped .*\bapi-server \(pid \d+\)", out) and "scheduler (pid" not in out.split("Stopped ", 1)[1], out[-2000:]
    assert out.endswith("stopped\n")


def test_sigint_to_make_alone_stops_everything_make_run_started(tmp_path, pipelines):
    """`make run` in a terminal gets Ctrl-C with its children; a SIGINT sent to make alone must stop them too."""
    home = tmp_path / "airflow"
    argv = ["make", "-C", str(PROJECT), "--no-print-directory", "run", f"RUN_ARGS=--airflow-home {home} --port {free_port()}"]
    with running(argv, tmp_path, pipelines) as (proc, lines, started):
        wait_for_line(proc, lines, r"Airflow UI: ", timeout=300)
        started[:] = descendants(proc.pid)
        names = command_lines(started)
        assert "adclick-ops run" in names and "scheduler" in names, names
        stop_and_check(proc, signal.SIGINT, lines, home, started)


def test_the_run_command_says_what_failed_whether_it_is_retried_and_where_the_log_is(tmp_path, pipelines):
    edit_yaml(pipelines / "airflow_lab2.yaml", lambda d: d["Airflow_Lab2"]["default_args"].update(retries=1, retry_delay_sec=1))
    home, api_port, smtp_port = tmp_path / "airflow", free_port(), free_port()  # no SMTP server on smtp_port
    argv = [sys.executable, "-m", "adclick_ops.cli", "run", "--airflow-home", str(home), "--port", str(api_port)]
    with running(argv, tmp_path, pipelines, AIRFLOW_CONN_SMTP_DEFAULT=smtp_connection_uri("127.0.0.1", smtp_port)) as (
        proc,
        lines,
        started,
    ):
        wait_for_line(proc, lines, r"Everything keeps running", timeout=600)
        started[:] = descendants(proc.pid)
        out = "".join(lines)
        run_id = re.search(r"Triggered Airflow_Lab2: (\S+)", out).group(1)
        log = f"http://localhost:{api_port}/dags/Airflow_Lab2/runs/{quote(run_id, safe='')}/tasks/send_email?try_number="
        refused = f"SmtpDeliveryError: cannot send the report through the SMTP server at 127.0.0.1:{smtp_port}"
        # try 1: said with its record when it was seen waiting for its retry, else said as retried (the record
        # of a try goes with the next one); either way with its log
        first = re.search(
            r"send_email +(up_for_retry\n    transient error on try 1: (.*) \(Airflow retries it\)|try 1 failed; Airflow retried it)", out
        )
        assert first, out
        assert first.group(2) is None or first.group(2).startswith(refused)
        assert f"    log: {log}1\n" in out
        assert f"transient error on try 2: {refused}" in out and "(no tries left)\n    log: " + log + "2\n" in out
        assert f"Airflow_Lab2 run {run_id}: failed" in out
        stop_and_check(proc, signal.SIGTERM, lines, home, started)


def test_a_run_failing_on_a_missing_dataset_is_explained_by_the_monitor(tmp_path, pipelines):
    """The whole way through real Airflow: the failed task's record reaches the monitor through the REST API,
    which names load_data_task, its one try (a data error is not retried) and the missing file."""
    missing = tmp_path / "gone" / "advertising.csv"
    edit_yaml(
        pipelines / "airflow_lab2.yaml",
        lambda d: (
            d["Airflow_Lab2"]["training"].update(dataset=str(missing)),
            d["Airflow_Lab2"]["default_args"].update(retries=1, retry_delay_sec=1),
        ),
    )
    home, api_port, monitor_port = tmp_path / "airflow", free_port(), free_port()
    argv = [sys.executable, "-m", "adclick_ops.cli", "run", "--airflow-home", str(home), "--port", str(api_port)]
    with running(argv, tmp_path, pipelines, ADCLICK_MONITOR_PORT=str(monitor_port)) as (proc, lines, started):
        wait_for_line(proc, lines, r"Everything keeps running", timeout=600)
        started[:] = descendants(proc.pid)
        run_id = re.search(r"Triggered Airflow_Lab2: (\S+)", "".join(lines)).group(1)
        base = f"http://127.0.0.1:{monitor_port}"
        deadline = time.monotonic() + 60
        while True:  # the monitor's cache may still hold the running state for a few seconds
            status = requests.get(f"{base}/api/status", timeout=10).json()
            if status["case"] == "failed" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert status["case"] == "failed" and status["run"]["run_id"] == run_id, status
        failure = status["run"]["failure"]
        assert failure["task_id"] == "load_data_task" and failure["try_number"] == 1, failure
        assert failure["kind"] == "data" and failure["retryable"] is False
        assert str(missing) in failure["error"] and "dataset file not found" in failure["error"]
        assert failure["log_link"].endswith("/tasks/load_data_task?try_number=1")
        assert "load_data_task" in status["reason"] and str(missing) in status["reason"]
        page = requests.get(f"{base}/failure", timeout=10)
        assert page.status_code == 200
        assert "load_data_task" in page.text and str(missing) in page.text

        # run again from the terminal: the failure is said, with its log, and the exit status is 1
        env = {**os.environ, "ADCLICK_OPS_PIPELINES": str(pipelines), "ADCLICK_OPS_HOME": str(pipelines.parent)}
        again = subprocess.run(
            [sys.executable, "-m", "adclick_ops.cli", "trigger", "--wait", "--airflow-home", str(home)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert again.returncode == 1, again.stdout + again.stderr
        second = re.search(r"Triggered Airflow_Lab2: (\S+)", again.stdout).group(1)
        assert re.search(r"^  load_data_task +failed\n    data error on try 1: .*dataset file not found", again.stdout, re.M), again.stdout
        assert f"/runs/{quote(second, safe='')}/tasks/load_data_task?try_number=1" in again.stdout
        assert f"Airflow_Lab2 run {second}: failed" in again.stdout
        # the run command's console reports it too, with what failed
        wait_for_line(proc, lines, rf"the manual run {re.escape(second)} .*ended", 120)
        wait_for_line(proc, lines, r"data error on try 1: .*dataset file not found", 60)
        stop_and_check(proc, signal.SIGTERM, lines, home, started)
