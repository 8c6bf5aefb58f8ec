"""Load on the monitor's POST /api/predict (one row per request), and batch scoring of 100,000 rows.

A champion is trained on the shipped dataset into a temporary model folder; the monitor is served by
`adclick_ops.monitor.server.serve` as `adclick-ops monitor` serves it (gunicorn, 2 uvicorn workers,
keep-alive) in its own process on loopback; wrk (Debian: `wrk`) posts one row per request. Beside wrk's
figures: the server's CPU time per request (its processes' user + system time over the run, divided by
the requests), which moves far less than requests/s when other work shares the machine, and the load
average. Then `predict_file`, what `adclick-ops predict` runs, scores a CSV of 100,000 generated rows.
Prints a table and writes benchmarks/results/predict_load.json (with the machine, as the other benchmarks do).

    .venv/bin/python benchmarks/predict_load.py [--duration 10] [--connections 64] [--rows 100000] [--skip-batch]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from monitor_load import _wait_until_serving, parse_wrk  # noqa: E402

from adclick_ops.config.vocabulary import ENV_MODEL_DIR  # noqa: E402
from adclick_ops.net import free_port  # noqa: E402

from _common import load as load_average  # noqa: E402
from _common import write  # noqa: E402

TARGET = {"requests_per_s": 5000, "p99_ms": 25, "errors": 0, "batch_100k_s": 0.5}
FEATURES = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
"""


def train_champion(model_dir: Path, runs: Path) -> Any:
    """One run of the training tasks on the shipped data: version 1, champion. Returns the registry."""
    from adclick_ops import tasks
    from adclick_ops.config import load_catalog
    from adclick_ops.factory import training_jobs
    from adclick_ops.registry import Registry

    job = training_jobs(load_catalog(ROOT / "pipelines"))["Airflow_Lab2"].model_copy(
        update={"model_dir": str(model_dir), "artifacts_root": str(runs)}
    )
    settings = job.model_dump(mode="json")
    for name in ("load_data", "preprocess", "separate_data_outputs", "build_save_model", "load_model"):
        getattr(tasks, name)(settings=settings, run_id="bench")
    return Registry.for_job(job)


def _run_monitor(model_dir: str, port: int) -> None:
    os.environ[ENV_MODEL_DIR] = model_dir
    from adclick_ops.monitor.server import serve

    serve("127.0.0.1", port, "http://127.0.0.1:9", server="gunicorn")


def _cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU time of the process `pid` and of each of its children (gunicorn's arbiter and workers)."""
    import psutil

    seconds = {}
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


def load(model_dir: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import pandas as pd

    row = pd.read_csv(ROOT / "dags" / "data" / "advertising.csv")[FEATURES].head(1).to_dict("records")[0]
    body = json.dumps({"rows": [row]})
    script = work / "post.lua"
    script.write_text(LUA % body)
    port = free_port()
    process = multiprocessing.Process(target=_run_monitor, args=(str(model_dir), port))
    process.start()
    url = f"http://127.0.0.1:{port}/api/predict"
    try:
        _wait_until_serving(f"http://127.0.0.1:{port}/health", process)
        check = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        if check.status_code != 200:
            raise SystemExit(f"the monitor does not predict: {check.status_code} {check.text[:300]}")
        command = [
            "wrk",
            f"-t{args.wrk_threads}",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ]
        before, load_before = _cpu_seconds(process.pid), load_average()
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 60, check=True)
        after, load_after = _cpu_seconds(process.pid), load_average()
    finally:
        process.terminate()
        process.join(30)
    served = parse_wrk(done.stdout)
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    cpu = sum(used.values())
    workers = sorted((seconds for pid, seconds in used.items() if pid != process.pid), reverse=True)
    return {
        **served,
        "server_cpu_us_per_request": round(cpu / max(served["requests"], 1) * 1e6, 1),
        # how evenly the kept-alive connections were spread: each process's part of the server's CPU
        "cpu_share_by_process": [round(seconds / cpu, 2) for seconds in workers] if cpu else [],
        "load_average_before": load_before,
        "load_average_after": load_after,
        "wrk": " ".join(command[:-3]),
    }


def batch(registry: Any, rows: int, work: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from adclick_ops.predict import predict_file

    seed = pd.read_csv(ROOT / "dags" / "data" / "advertising.csv")[FEATURES]
    rng = np.random.default_rng(0)
    frame = seed.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    frame["Area Income"] = (frame["Area Income"] + rng.normal(0, 1000, rows)).round(2)
    source, target = work / "in.csv", work / "out.csv"
    frame.to_csv(source, index=False)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        _, scored = predict_file(registry, str(source), str(target))
        times.append(time.perf_counter() - started)
    assert scored == rows
    # the scoring alone: the champion's ONNX file through onnxruntime, as predict_file loads it
    from adclick_ops.predict import load_champion, score

    champion = load_champion(registry, threads=0)
    x = frame[FEATURES].to_numpy("float64")
    scoring = []
    for _ in range(5):
        started = time.perf_counter()
        score(champion.model, x)
        scoring.append(time.perf_counter() - started)
    return {
        "rows": rows,
        "best_s": round(min(times), 3),
        "runs_s": [round(t, 3) for t in times],
        "score_best_s": round(min(scoring), 4),
        "score_runs_s": [round(t, 4) for t in scoring],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--skip-batch", action="store_true", help="only the load on /api/predict")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = train_champion(work / "model", work / "runs")
        served = load(work / "model", args, work)
        scored = None if args.skip_batch else batch(registry, args.rows, work)
    verdict = {
        "requests_per_s": served["requests_per_s"] >= TARGET["requests_per_s"],
        "p99_ms": served["p99_ms"] < TARGET["p99_ms"],
        "errors": served["errors"] == TARGET["errors"],
    }
    if scored is not None:
        verdict["batch_100k_s"] = scored["best_s"] < TARGET["batch_100k_s"]
    print(
        f"\nPOST /api/predict, one row, {args.connections} connections, {args.duration} s, gunicorn 2 uvicorn workers, keep-alive, wrk on loopback\n"
    )
    print(
        f"| {'req/s':>9} | {'p50 ms':>8} | {'p99 ms':>8} | {'errors':>6} | {'requests':>9} | {'server CPU/request':>18} | {'load average':>18} |"
    )
    print(f"|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 8}|{'-' * 11}|{'-' * 20}|{'-' * 20}|")
    print(
        f"| {served['requests_per_s']:>9.0f} | {served['p50_ms']:>8.2f} | {served['p99_ms']:>8.2f} | {served['errors']:>6} | {served['requests']:>9} "
        f"| {served['server_cpu_us_per_request']:>15.1f} µs | {served['load_average_before'][0]:>7} to {served['load_average_after'][0]:<7} |"
    )
    if scored is not None:
        print(
            f"\nbatch: {scored['rows']:,} rows read, checked, scored and written in {scored['best_s']:.3f} s (best of 3: {scored['runs_s']})"
        )
        print(f"       of which scoring through onnxruntime: {scored['score_best_s']:.4f} s (best of 5: {scored['score_runs_s']})")
    print(f"share of the server's CPU by process: {served['cpu_share_by_process']}")
    print(f"targets {'met' if all(verdict.values()) else 'NOT met'}: {verdict}")
    path = write(
        "predict_load",
        {
            "load": {"route": "POST /api/predict", "rows_per_request": 1, "connections": args.connections, "duration_s": args.duration},
            "served": served,
            "batch": scored,
            "targets": TARGET,
            "targets_met": verdict,
        },
    )
    print(f"written {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
