"""Item 3: end-to-end time of Airflow_Lab2, ours against the seed replica, in the same run.

(i)  `airflow dags test Airflow_Lab2`: wall time and CPU time, each in its own Airflow home (SQLite, same settings,
     one migrated database copied to each), in rounds (ours, seed, no-op) after a warm-up round; ours / seed
     round by round and their median (the target: at most 1.1); beside ours and the seed replica, the same
     graph with tasks that do nothing (benchmarks/noop/): Airflow's own floor.
(ii) A real Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor, SQLite) with both
     DAG folders in one bundle (the replica's DAG ids get the suffix _seed): time from the REST
     trigger to the run's success, after one warm-up run of each, runs alternated; per task, where the time goes (scheduling gap,
     queue wait, run time of the task process) from the task instances' timestamps. Measured twice: with
     a bytecode cache (as deployed) and without (every import compiles from source).
Outputs (model, run files, e-mails) go to a temporary folder. Prints tables and writes
benchmarks/results/end_to_end.json.

    .venv/bin/python benchmarks/end_to_end.py [--runs 2] [--only i|ii] [--warmup 1] [--modes cached,none] [--env KEY=VALUE ...]
        [--project COPY] [--keep FOLDER] [--profile FOLDER]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adclick_ops.airflow_api import AirflowClient, AirflowError  # noqa: E402
from adclick_ops.config import load_catalog  # noqa: E402
from adclick_ops.config.vocabulary import TRAINING_DAG_ID  # noqa: E402
from adclick_ops.embedded.mailsink import MailSink  # noqa: E402
from adclick_ops.embedded.run import connect, trigger  # noqa: E402
from adclick_ops.embedded.stack import Stack, airflow  # noqa: E402
from adclick_ops.net import free_port  # noqa: E402

import _common  # noqa: E402
from _common import MODES, NOOP_DAGS, ROOT, SEED_DAGS, airflow_env, bytecode, load, table, verdict, write  # noqa: E402

TARGETS = {"stack": 0.6, "dags_test": 1.1}  # (ii) ours / seed, best of each; (i) the median of the rounds' ours / seed
# The shipped graph's task ids in file order (the seed's order), read from the pipeline file itself.
TASKS = list(load_catalog(ROOT / "pipelines").dags[TRAINING_DAG_ID].tasks)
SUFFIX = "_seed"
NOOP_SUFFIX = "_noop"


def our_pipelines(work: Path, monitor_port: int) -> Path:
    """A copy of pipelines/ whose outputs go under `work`; no schedule, the monitor task ends by itself."""
    folder = work / "pipelines"
    shutil.copytree(_common.PROJECT / "pipelines", folder)
    lab = folder / "airflow_lab2.yaml"
    doc = yaml.safe_load(lab.read_text())
    doc["Airflow_Lab2"]["schedule"] = None
    training = doc["Airflow_Lab2"]["training"]
    training.update(dataset=str(_common.PROJECT / training["dataset"]), model_dir=str(work / "model"), artifacts_root=str(work / "runs"))
    lab.write_text(yaml.safe_dump(doc, sort_keys=False))
    flask = folder / "airflow_lab2_flask.yaml"
    doc = yaml.safe_load(flask.read_text())
    doc["Airflow_Lab2_Flask"]["monitor"].update(port=monitor_port, serve_for=2)
    flask.write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def seed_env(work: Path) -> dict[str, str]:
    return {
        "SEED_DATA": str(ROOT / "dags" / "data" / "advertising.csv"),
        "SEED_WORKDIR": str(work / "seed-working"),
        "SEED_MODEL_DIR": str(work / "seed-model"),
        "SEED_SCHEDULE": "",
        "SEED_FLASK_SERVE_FOR": "2",
    }


def migrate(env: dict[str, str], home: Path) -> None:
    with open(home / "migrate.log", "wb") as log:
        if airflow(["db", "migrate"], env, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"airflow db migrate failed; see {home / 'migrate.log'}")


def dags_test(runs: int, work: Path, extra: dict[str, str], warmup: int = 1) -> dict[str, Any]:
    mail = work / "mail-i"
    with MailSink(mail) as sink:
        common = {**seed_env(work), **sink.connection_env(), **extra}
        pipelines = our_pipelines(work / "ours-i", free_port())
        envs = {
            "ours": airflow_env(work / "home-ours-i", _common.OUR_DAGS, {**common, "ADCLICK_OPS_PIPELINES": str(pipelines)}),
            "seed": airflow_env(work / "home-seed-i", SEED_DAGS, common),
            "noop": airflow_env(work / "home-noop-i", NOOP_DAGS, common),
        }
        envs = {k: bytecode(v, cached=True) for k, v in envs.items()}
        migrate(envs["ours"], work / "home-ours-i")
        for name in ("seed", "noop"):
            shutil.copy(work / "home-ours-i" / "airflow.db", work / f"home-{name}-i" / "airflow.db")
        times: dict[str, list[float]] = {name: [] for name in envs}
        cpu: dict[str, list[float]] = {name: [] for name in envs}
        for round_ in range(warmup + runs):
            for name, env in envs.items():
                elapsed, used = _one_dags_test(name, env)
                if round_ >= warmup:
                    times[name].append(elapsed)
                    cpu[name].append(used)
    return _dags_test_report(runs, warmup, times, cpu)


def _one_dags_test(name: str, env: dict[str, str]) -> tuple[float, float]:
    """One `airflow dags test Airflow_Lab2`: its wall and CPU seconds; its log is kept beside the others."""
    home = Path(env["AIRFLOW_HOME"])
    used, start = _children_cpu(), time.perf_counter()
    with open(home / "dags-test.log", "a") as log:
        result = airflow(["dags", "test", "Airflow_Lab2"], env, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - start
    used = _children_cpu() - used
    text = (home / "dags-test.log").read_text(errors="replace")
    if result.returncode != 0 or "state=success" not in text.rsplit("DagRun Finished", 1)[-1][:400]:
        raise SystemExit(f"`airflow dags test` of {name} failed; see {home / 'dags-test.log'}")
    (home / "dags-test.log").rename(home / f"dags-test-{len(list(home.glob('dags-test-*.log'))) + 1}.log")
    return elapsed, used


def _dags_test_report(runs: int, warmup: int, times: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict[str, Any]:
    """Best of each variant, and ours / seed round by round: the two ran one after the other in each round,
    so a round's ratio holds when the machine's speed drifts between rounds; the verdict is their median."""
    best = {k: min(v) for k, v in times.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    pairs = [o / s for o, s in zip(times["ours"], times["seed"], strict=True)]
    cpu_pairs = [o / s for o, s in zip(cpu["ours"], cpu["seed"], strict=True)]
    ratio, floor = best["ours"] / best["seed"], best["noop"] / best["seed"]
    median = statistics.median(pairs)
    labels = {"ours": "ours (dags/)", "seed": "seed replica", "noop": "tasks that do nothing (Airflow's floor)"}
    print(f"\n(i) `airflow dags test Airflow_Lab2`, wall time, bytecode cached, {warmup} warm-up round(s), then {runs} (load {load()})")
    rows = [[labels[k], f"{best[k]:.1f}", ", ".join(f"{t:.1f}" for t in times[k]), ", ".join(f"{t:.1f}" for t in cpu[k])] for k in times]
    print(table(["DAG file", "best s", "all runs s", "CPU s (user + system)"], rows))
    print(
        f"ours / seed, round by round: {', '.join(f'{r:.2f}' for r in pairs)}; median {median:.2f} "
        f"(target <= {TARGETS['dags_test']}: {verdict(median <= TARGETS['dags_test'])}); in CPU time: "
        f"{', '.join(f'{r:.2f}' for r in cpu_pairs)}, median {statistics.median(cpu_pairs):.2f}"
    )
    print(
        f"best of each: ours / seed = {ratio:.2f}; no-op / seed = {floor:.2f}: no DAG file can go below this; "
        f"ours - no-op = {best['ours'] - best['noop']:.1f} s; in CPU time: ours / seed = "
        f"{best_cpu['ours'] / best_cpu['seed']:.2f}, ours - seed = {best_cpu['ours'] - best_cpu['seed']:.1f} s"
    )
    return {
        "seconds": times,
        "cpu_seconds": cpu,
        "warmup_rounds": warmup,
        "best": best,
        "ratio": ratio,
        "round_ratios": pairs,
        "median_round_ratio": median,
        "cpu_round_ratios": cpu_pairs,
        "cpu_ratio": best_cpu["ours"] / best_cpu["seed"],
        "floor_ratio": floor,
    }


def _children_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's finished children: one `airflow dags test` at a time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def _breakdown(api: AirflowClient, dag_id: str, run_id: str) -> dict[str, Any]:
    run = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
    tis = {ti["task_id"]: ti for ti in api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]}
    rows = {}
    for task in TASKS:
        ti = tis[task]
        queued, start, end = _ts(ti.get("queued_when")), _ts(ti.get("start_date")), _ts(ti.get("end_date"))
        rows[task] = {
            "state": ti["state"],
            "queued": queued,
            "start": start,
            "end": end,
            "queue_wait_s": (start - queued) if start and queued else None,
            "run_s": (end - start) if end and start else None,
        }
    # scheduling gap: from the end of the upstream task to the moment this one is queued
    upstream = {t: TASKS[i - 1] if i < 5 else "load_model_task" for i, t in enumerate(TASKS) if i}
    for task, up in upstream.items():
        if rows[task]["queued"] and rows[up]["end"]:
            rows[task]["schedule_gap_s"] = rows[task]["queued"] - rows[up]["end"]
    first = rows[TASKS[0]]
    rows[TASKS[0]]["schedule_gap_s"] = (first["queued"] - _ts(run["queued_at"])) if first["queued"] and run.get("queued_at") else None
    return {
        "queued_at": run.get("queued_at"),
        "start_date": run.get("start_date"),
        "end_date": run.get("end_date"),
        "run_s": _ts(run["end_date"]) - _ts(run["queued_at"]),
        "tasks": rows,
    }


def _wait_for_dags(api: AirflowClient, dag_ids: list[str], stack: Stack, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    for dag_id in dag_ids:
        while True:
            try:
                api.call("GET", f"/dags/{dag_id}")
                break
            except AirflowError:
                if stack.dead() or time.monotonic() > deadline:
                    raise SystemExit(f"{dag_id} was not parsed; see {stack.home / 'dag-processor.log'}") from None
                time.sleep(1)


def _idle_cpu(pid: int, seconds: float) -> float:
    """CPU used by the scheduler process while no DAG runs, as a fraction of one core."""
    import psutil

    proc = psutil.Process(pid)
    before = sum(proc.cpu_times()[:2])
    time.sleep(seconds)
    return (sum(proc.cpu_times()[:2]) - before) / seconds


def _trigger_and_wait(api: AirflowClient, dag_id: str, stack: Stack, timeout: float = 300) -> tuple[float, str, str]:
    start = time.perf_counter()
    run_id = trigger(api, dag_id, "benchmarks/end_to_end.py")
    while time.perf_counter() - start < timeout:
        state = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            return time.perf_counter() - start, run_id, state
        if stack.dead():
            raise SystemExit(f"{', '.join(stack.dead())} stopped:\n" + "\n".join(stack.log_tail(n) for n in stack.dead()))
        time.sleep(0.1)
    return time.perf_counter() - start, run_id, "timed out"


def _profiler(pid: int, out: Path) -> subprocess.Popen:
    """py-spy on the scheduler and its children (LocalExecutor workers, task supervisors, task processes)."""
    exe = shutil.which("py-spy") or "/tmp/uvenv/bin/py-spy"
    return subprocess.Popen(
        [exe, "record", "--subprocesses", "--rate", "100", "--format", "raw", "-o", str(out), "--pid", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def with_stack(runs: int, work: Path, extra: dict[str, str], profile: Path | None = None, cached: bool = True) -> dict[str, Any]:
    work = work / ("ii-cached" if cached else "ii-none")
    home = work / "home-ii"
    bundle = work / "dags-ii"
    bundle.mkdir(parents=True)
    shutil.copy(_common.OUR_DAGS / "adclick_dags.py", bundle / "adclick_dags.py")
    for item in ("main.py", "Flask_API.py", "src", "templates"):
        src = SEED_DAGS / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, bundle / item)
    shutil.copy(NOOP_DAGS / "noop_lab2.py", bundle / "noop_lab2.py")
    port = free_port()
    with MailSink(work / "mail-ii") as sink:
        env = airflow_env(
            home,
            bundle,
            {
                **seed_env(work),
                **sink.connection_env(),
                "SEED_DAG_SUFFIX": SUFFIX,
                "NOOP_DAG_SUFFIX": NOOP_SUFFIX,
                "ADCLICK_OPS_PIPELINES": str(our_pipelines(work / "ours-ii", free_port())),
                "ADCLICK_AIRFLOW_URL": f"http://localhost:{port}",
                **extra,
            },
            api_port=port,
        )
        env = bytecode(env, cached=cached)
        migrate(env, home)
        stack = Stack(env, home)
        try:
            stack.start_airflow()
            api = connect(f"http://localhost:{port}", stack, time.monotonic() + 240)
            dags = {"ours": "Airflow_Lab2", "seed": "Airflow_Lab2" + SUFFIX, "noop": "Airflow_Lab2" + NOOP_SUFFIX}
            _wait_for_dags(api, [*dags.values(), "Airflow_Lab2_Flask", "Airflow_Lab2_Flask" + SUFFIX], stack)
            for dag_id in (*dags.values(), "Airflow_Lab2_Flask", "Airflow_Lab2_Flask" + SUFFIX):
                api.call("PATCH", f"/dags/{dag_id}", body={"is_paused": False})
            for dag_id in dags.values():  # warm-up, not counted: first imports, bytecode cache, API and DB caches
                time.sleep(3)
                _trigger_and_wait(api, dag_id, stack)
            idle_cpu = _idle_cpu(stack.processes["scheduler"].pid, 10)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in dags}
            for _ in range(runs):
                for name, dag_id in dags.items():
                    time.sleep(3)  # let the monitor DAG triggered by the previous run finish
                    label = f"{name}-{'cached' if cached else 'none'}-{len(results[name]) + 1}"
                    spy = _profiler(stack.processes["scheduler"].pid, profile / f"{label}.txt") if profile else None
                    seconds, run_id, state = _trigger_and_wait(api, dag_id, stack)
                    if spy:
                        spy.send_signal(2)
                        spy.wait(60)
                    if state != "success":
                        raise SystemExit(f"{dag_id} run {run_id}: {state}; see {home}")
                    results[name].append({"trigger_to_success_s": seconds, "run_id": run_id, **_breakdown(api, dag_id, run_id)})
        finally:
            stack.stop()
    best = {k: min(r["trigger_to_success_s"] for r in v) for k, v in results.items()}
    ratio = best["ours"] / best["seed"]
    noop_ratio, over_noop = best["noop"] / best["seed"], best["ours"] / best["noop"]
    mode = MODES["cached" if cached else "none"]
    print(
        f"\n(ii) trigger (REST API) to success of Airflow_Lab2, scheduler + dag-processor + api-server, LocalExecutor, SQLite, "
        f"{mode}; best of {runs} (load {load()})"
    )
    print(
        table(
            ["DAG file", "best s", "all runs s"],
            [[k, f"{best[k]:.1f}", ", ".join(f"{r['trigger_to_success_s']:.1f}" for r in v)] for k, v in results.items()],
        )
    )
    print(
        f"ours / seed = {ratio:.2f} (target <= {TARGETS['stack']}: {verdict(ratio <= TARGETS['stack'])}); "
        f"no-op / seed = {noop_ratio:.2f}; ours / no-op = {over_noop:.2f}"
    )
    fastest = {name: min(runs_, key=lambda r: r["trigger_to_success_s"])["tasks"] for name, runs_ in results.items()}
    rows = []
    for task in TASKS:
        row = [task]
        for name in dags:
            t = fastest[name][task]
            row += [f"{t.get('schedule_gap_s') or 0:.1f}", f"{t.get('queue_wait_s') or 0:.1f}", f"{t.get('run_s') or 0:.1f}"]
        rows.append(row)
    print("Per task, fastest run (s): gap = upstream end -> queued, wait = queued -> task process started, run = task process start -> end")
    print(table(["task", *(f"{name} {col}" for name in dags for col in ("gap", "wait", "run"))], rows))
    # The task processes alone, along the longest path (send_email and my_trigger_task run side by side):
    # what a run would take if no task ever waited for the scheduler.
    path = {
        name: sum(tasks[t]["run_s"] or 0 for t in TASKS[:5]) + max(tasks[t]["run_s"] or 0 for t in TASKS[5:])
        for name, tasks in fastest.items()
    }
    no_gaps = path["ours"] / path["seed"]
    print(
        f"task run times along the longest path, fastest run: ours {path['ours']:.1f} s, seed {path['seed']:.1f} s; "
        f"ours / seed with no scheduling gap at all = {no_gaps:.2f}"
    )
    print(
        f"scheduler CPU while idle: {idle_cpu:.0%} of one core (scheduler_idle_sleep_time = "
        f"{env.get('AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME', '1 (default)')})"
    )
    return {
        "mode": mode,
        "runs": results,
        "best": best,
        "ratio": ratio,
        "noop_ratio": noop_ratio,
        "ours_over_noop": over_noop,
        "target": TARGETS["stack"],
        "met": ratio <= TARGETS["stack"],
        "extra_env": extra,
        "task_path_s": path,
        "ratio_without_gaps": no_gaps,
        "scheduler_idle_cpu": idle_cpu,
        "scheduler_idle_sleep_time": env.get("AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME", "1 (default)"),
    }


def main(
    runs: int = 2,
    only: str | None = None,
    extra: dict[str, str] | None = None,
    project: str | None = None,
    keep: str | None = None,
    profile: str | None = None,
    stack_runs: dict[str, int] | None = None,
    warmup: int = 1,
) -> dict[str, Any]:
    """`runs` for (i); `stack_runs` maps each bytecode mode of (ii) to its number of runs (default: both, `runs` each)."""
    _common.use_project(project)
    extra = extra or {}
    stack_runs = stack_runs or {"cached": runs, "none": runs}
    result: dict[str, Any] = {"project": str(_common.PROJECT), "extra_env": extra, "load_before": load()}
    if profile:
        Path(profile).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if only in (None, "i"):
            result["dags_test"] = dags_test(runs, work, extra, warmup)
        if only in (None, "ii"):
            result["stack"] = {
                mode: with_stack(n, work, extra, Path(profile) if profile else None, cached=mode == "cached")
                for mode, n in stack_runs.items()
            }
    result["load_after"] = load()
    print(f"-> {write(_common.result_name('end_to_end', candidate=bool(extra)), result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", choices=["i", "ii"])
    parser.add_argument("--warmup", type=int, default=1, help="(i) rounds run first and not counted (default 1)")
    parser.add_argument("--modes", default="cached,none", help="(ii) bytecode modes: cached, none, or both (default)")
    parser.add_argument("--env", action="append", default=[], help="extra KEY=VALUE for Airflow (try a configuration change)")
    parser.add_argument("--project", help="measure the dags/ and adclick_ops/ of this copy of the project")
    parser.add_argument("--keep", help="work in this (new) folder and keep it: Airflow homes, task logs, outputs")
    parser.add_argument("--profile", help="(ii) record py-spy profiles (raw, collapsed stacks) of each run into this folder")
    args = parser.parse_args()
    main(
        args.runs,
        args.only,
        dict(kv.split("=", 1) for kv in args.env),
        args.project,
        args.keep,
        args.profile,
        {mode: args.runs for mode in args.modes.split(",")},
        args.warmup,
    )
