"""Load on the monitor's /api/status with and without its cache, measured in the same run.

The stub Airflow API (tests/support/airflow_stub.py, a real HTTP server) and the monitor, served by
`adclick_ops.monitor.server.serve` as `adclick-ops monitor` serves it (gunicorn, 2 workers; or
`--server waitress`), each run in their own process on loopback; wrk (Debian: `wrk`) makes the load,
after 2 s of warm-up load that is not counted.
Prints a table and writes benchmarks/results/monitor_load.json.

    .venv/bin/python benchmarks/monitor_load.py [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from adclick_ops.net import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "monitor_load.json"
sys.path.insert(0, str(ROOT))  # the tests package, for its Airflow API stub

SERVERS = {"gunicorn": "gunicorn, 2 uvicorn workers (Flask on 4 threads each)", "waitress": "waitress, 8 threads"}
WARMUP_S = 2  # seconds of load before each measured run
TARGET = {"requests_per_s": 2000, "p99_ms": 50, "errors": 0, "speedup_vs_no_cache": 10}


def _run_stub(ready: Any) -> None:
    from tests.support.airflow_stub import AirflowStub, dag_run, metrics

    stub = AirflowStub().start()
    stub.runs = [dag_run("manual__bench", "success")]
    stub.xcoms = {"manual__bench": metrics("manual__bench")}
    ready.put(stub.url)
    multiprocessing.Event().wait()  # until terminated


def _run_monitor(airflow_url: str, cache_ttl: float, server: str, port: int) -> None:
    from adclick_ops.monitor.server import serve

    serve("127.0.0.1", port, airflow_url, cache_ttl=cache_ttl, server=server)


def _start(target: Any, *args: Any) -> tuple[multiprocessing.Process, Any]:
    ready = multiprocessing.Queue()
    process = multiprocessing.Process(target=target, args=(*args, ready), daemon=True)
    process.start()
    return process, ready.get(timeout=60)


def _wait_until_serving(url: str, process: multiprocessing.Process) -> requests.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return requests.get(url, timeout=10)
        except requests.ConnectionError:
            if not process.is_alive() or time.monotonic() > deadline:
                raise SystemExit(f"the monitor did not start serving {url}") from None
            time.sleep(0.1)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNIT_MS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, p50/p99 latency and errors out of `wrk --latency` text."""
    percentile = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M))
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+),", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = (sum(int(n) for n in socket_errors.groups()) if socket_errors else 0) + (int(non_2xx.group(1)) if non_2xx else 0)
    return {
        "requests": int(total.group(1)),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": round(_ms(percentile["50"]), 3),
        "p99_ms": round(_ms(percentile["99"]), 3),
        "errors": errors,
        # which errors: wrk's own line, kept so that a failed target says what failed
        "error_kinds": (socket_errors.group(0) if socket_errors else "") + (f"; {non_2xx.group(0)}" if non_2xx else ""),
    }


def measure(name: str, airflow_url: str, cache_ttl: float, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    # Not daemonic: gunicorn's arbiter forks its workers.
    process = multiprocessing.Process(target=_run_monitor, args=(airflow_url, cache_ttl, args.server, port))
    process.start()
    url = f"http://127.0.0.1:{port}/api/status"
    try:
        check = _wait_until_serving(url, process)
        if check.status_code != 200 or check.json()["case"] != "success":
            raise SystemExit(f"{name}: the monitor is not serving the stub's run: {check.status_code} {check.text[:200]}")
        # Warm-up, not counted: each worker fills its own cache on its first requests, and until then a
        # burst beyond MAX_WAITERS is answered 503 ("already waiting on Airflow") by design.
        warmup = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{WARMUP_S}s", url]
        subprocess.run(warmup, capture_output=True, text=True, timeout=WARMUP_S + 60, check=True)
        command = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "--timeout", "5s", url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 60, check=True)
    finally:
        process.terminate()  # SIGTERM: gunicorn stops its workers gracefully
        process.join(30)
    return {"variant": name, "cache_ttl_s": cache_ttl, **parse_wrk(done.stdout), "wrk": " ".join(command[:-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per variant (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--server",
        choices=["gunicorn", "waitress"],
        default="gunicorn",
        help="as serve(): gunicorn 2 workers (standalone) or waitress 8 threads",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    stub, airflow_url = _start(_run_stub)
    try:
        rows = [measure("cached (TTL 5 s)", airflow_url, 5.0, args), measure("no cache", airflow_url, 0.0, args)]
    finally:
        stub.terminate()
        stub.join(10)

    cached, uncached = rows
    speedup = cached["requests_per_s"] / uncached["requests_per_s"] if uncached["requests_per_s"] else float("inf")
    verdict = {
        "requests_per_s": cached["requests_per_s"] >= TARGET["requests_per_s"],
        "p99_ms": cached["p99_ms"] < TARGET["p99_ms"],
        "errors": cached["errors"] == TARGET["errors"],
        "speedup_vs_no_cache": speedup >= TARGET["speedup_vs_no_cache"],
    }
    print(f"\n/api/status, {args.connections} connections, {args.duration} s per variant, {SERVERS[args.server]}, wrk on loopback\n")
    print(f"| {'variant':<18} | {'req/s':>9} | {'p50 ms':>8} | {'p99 ms':>8} | {'errors':>6} | {'requests':>9} |")
    print(f"|{'-' * 20}|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 8}|{'-' * 11}|")
    for row in rows:
        print(
            f"| {row['variant']:<18} | {row['requests_per_s']:>9.0f} | {row['p50_ms']:>8.2f} | {row['p99_ms']:>8.2f} | {row['errors']:>6} | {row['requests']:>9} |"
        )
    print(f"\ncache speed-up: {speedup:.1f}x; targets {'met' if all(verdict.values()) else 'NOT met'}: {verdict}")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "monitor_load",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load": {"route": "/api/status", "connections": args.connections, "duration_s": args.duration, "tool": "wrk"},
        "server": SERVERS[args.server],
        "results": rows,
        "speedup_vs_no_cache": round(speedup, 2),
        "targets": TARGET,
        "targets_met": verdict,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
