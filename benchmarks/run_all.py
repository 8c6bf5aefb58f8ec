"""`make bench`: every benchmark of docs/performance.md in one run (about 15 minutes on 2 cores).

1. parse time (parse_time.py), 2. scale (scale.py), 3. end to end (end_to_end.py: `airflow dags test`
and a running Airflow; imports.py: what each task's imports cost), 4. monitor load (monitor_load.py,
needs `wrk`), 5. data scale (data_scale.py: 100k, 1M and 5M rows through `airflow dags test`), 6. `adclick-ops graph`
(cli_time.py), 7. the CI commands (ci_commands.py: validate, plan, the pre-commit hook's install; validate_cold.py: validate on
the shipped folder and a 64 KiB file side by side), 8. validation of
one large file (validate_scale.py), 9. predictions (predict_load.py, needs `wrk`). Each prints its tables and
writes its JSON into benchmarks/results/; this script adds summary.json with every target.
Other Airflow processes on the machine slow every variant alike, but they make runs noisy: the
load average is recorded before and after each benchmark.

    .venv/bin/python benchmarks/run_all.py [--quick] [--project COPY] [--skip parse,scale,e2e,monitor,data,cli,ci,validate,predict]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import BENCH, MODES, PYTHON, RESULTS, load, machine, table, verdict, write  # noqa: E402


# the benchmarks in the order the docs report them, one step each: a script read top to bottom
def main() -> int:  # noqa: C901
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run, not for the docs)")
    parser.add_argument("--project", help="measure the dags/ and adclick_ops/ of this copy of the project as ours")
    parser.add_argument(
        "--skip", default="", help="comma-separated benchmarks to leave out: parse, scale, e2e, monitor, data, cli, ci, validate, predict"
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    import ci_commands
    import cli_time
    import data_scale
    import end_to_end
    import imports
    import parse_time
    import scale
    import validate_cold
    import validate_scale

    started = time.monotonic()
    info = machine()
    print(f"machine: {info['cpu']}, {info['nproc']} CPUs, load average {info['loadavg']}\n{info['free_h']}")
    timings, summary = {}, {}

    def step(name, func, *a, **kw):
        t = time.monotonic()
        result = func(*a, **kw)
        timings[name] = round(time.monotonic() - t, 1)
        return result

    if "parse" not in skip:
        parse = step("parse_time", parse_time.main, runs=5 if args.quick else 9, project=args.project)
        for mode in ("bytecode_cached", "no_bytecode_cache"):
            for name, check in parse[mode]["targets"].items():
                summary[f"1. parse {name} ({mode.replace('_', ' ')})"] = (f"{check['ratio']:.3f}", check["target"], check["met"])
    if "scale" not in skip:
        big = step("scale", scale.main, runs=2 if args.quick else 3, project=args.project)
        for name, check in big["targets"].items():
            summary[f"2. scale {name}"] = (f"{check['value']:.2f}", check["target"], check["met"])
    if "e2e" not in skip:
        stack_runs = {"cached": 2, "none": 1} if args.quick else {"cached": 4, "none": 1}
        e2e = step("end_to_end", end_to_end.main, runs=1 if args.quick else 2, project=args.project, stack_runs=stack_runs)
        i = e2e["dags_test"]
        summary["3i/10. dags test ours/seed, median of the rounds"] = (
            f"{i['median_round_ratio']:.2f} (best of each {i['ratio']:.2f}, no-op {i['floor_ratio']:.2f})",
            "<= 1.1",
            i["median_round_ratio"] <= 1.1,
        )
        for mode, ii in e2e["stack"].items():
            summary[f"3ii. running Airflow ours/seed ({MODES[mode]}, best of {stack_runs[mode]})"] = (
                f"{ii['ratio']:.2f} (no-op/seed {ii['noop_ratio']:.2f}, ours/no-op {ii['ours_over_noop']:.2f})",
                f"<= {ii['target']}",
                ii["met"],
            )
        step("imports", imports.main, runs=3 if args.quick else 5)
    if "cli" not in skip:
        cli = step("cli_time", cli_time.main, runs=3 if args.quick else 5)
        for name, check in cli["targets"].items():
            summary[f"6. adclick-ops {name}"] = (f"{check['value']:.2f} s", check["target"], check["met"])
    if "ci" not in skip:
        ci = step("ci_commands", ci_commands.main, runs=3 if args.quick else 9)
        for c in ci["commands"]:
            summary[f"7. adclick-ops {' '.join(c['command'])} (median)"] = (
                f"{c['median_ms']:.0f} ms",
                f"< {c['target_ms']:.0f} ms",
                c["met"],
            )
    if "ci" not in skip:
        cold = step("validate_cold", validate_cold.main, runs=5 if args.quick else 15)
        summary["7. adclick-ops validate, shipped folder (median)"] = (
            f"{cold['shipped']['median_s'] * 1000:.0f} ms",
            f"< {validate_cold.SHIPPED_TARGET_S * 1000:.0f} ms",
            cold["shipped"]["median_s"] < validate_cold.SHIPPED_TARGET_S,
        )
        summary["7. adclick-ops validate, a 64 KiB file of many features, more than shipped"] = (
            f"+{cold['big']['extra_s'] * 1000:.0f} ms",
            f"<= {validate_cold.BIG_EXTRA_TARGET_S * 1000:.0f} ms",
            cold["big"]["extra_s"] <= validate_cold.BIG_EXTRA_TARGET_S,
        )
    if "validate" not in skip:
        big_file = step("validate_scale", validate_scale.main, runs=3 if args.quick else 5)
        for name, check in big_file["targets"].items():
            summary[f"8. validate {name}"] = (str(check["value"])[:40], check["target"], check["met"])
    if "data" not in skip:
        sizes = [100_000, 1_000_000] if args.quick else [100_000, 1_000_000, 5_000_000]
        scale_data = step("data_scale", data_scale.main, sizes)
        for rows, check in scale_data["targets"].items():
            summary[f"5. data scale {int(rows):,} rows (ours-fixed)/plain time, RSS"] = (
                f"{check['time_ratio']:.2f}, {check['rss_ratio']:.2f}",
                f"<= {data_scale.TARGET:g} each",
                check["met"],
            )
    monitor_result = None
    if "monitor" not in skip:
        t = time.monotonic()
        monitor = subprocess.run([PYTHON, str(BENCH / "monitor_load.py"), "--duration", "5" if args.quick else "10"])
        timings["monitor_load"] = round(time.monotonic() - t, 1)
        monitor_json = RESULTS / "monitor_load.json"
        monitor_result = json.loads(monitor_json.read_text()) if monitor.returncode == 0 and monitor_json.exists() else None
        if not monitor_result:
            summary["4. monitor load"] = ("failed", "monitor_load.py targets", False)
    if monitor_result:
        cached_row = monitor_result["results"][0]
        value = f"{cached_row['requests_per_s']:.0f} req/s, p99 {cached_row['p99_ms']:.0f} ms, x{monitor_result['speedup_vs_no_cache']:.1f}"
        summary["4. monitor load /api/status"] = (
            value,
            ">= 2000 req/s, p99 < 50 ms, 0 errors, x10",
            all(monitor_result["targets_met"].values()),
        )
    if "predict" not in skip:
        t = time.monotonic()
        predict = subprocess.run([PYTHON, str(BENCH / "predict_load.py"), "--duration", "5" if args.quick else "10"])
        timings["predict_load"] = round(time.monotonic() - t, 1)
        predict_json = RESULTS / "predict_load.json"
        if predict.returncode == 0 and predict_json.exists():
            p = json.loads(predict_json.read_text())
            summary["9. POST /api/predict, one row, 64 connections"] = (
                f"{p['served']['requests_per_s']:.0f} req/s, p99 {p['served']['p99_ms']:.0f} ms, {p['served']['errors']} errors",
                ">= 1000 req/s, p99 < 50 ms, 0 errors",
                all(v for k, v in p["targets_met"].items() if k != "batch_100k_s"),
            )
            summary["9. batch scoring of 100,000 rows"] = (f"{p['batch']['best_s']:.2f} s", "< 2 s", p["targets_met"]["batch_100k_s"])
        else:
            summary["9. predictions"] = ("failed", "predict_load.py targets", False)
    print(f"\nSummary (total {time.monotonic() - started:.0f} s; load average now {load()})")
    print(
        table(
            ["target", "value", "limit", ""], [[k, v, lim, verdict(ok) if ok is not None else "?"] for k, (v, lim, ok) in summary.items()]
        )
    )
    write(
        _common.result_name("summary"),
        {
            "quick": args.quick,
            "project": str(_common.PROJECT),
            "seconds": timings,
            "targets": {k: {"value": v, "limit": lim, "met": ok} for k, (v, lim, ok) in summary.items()},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
