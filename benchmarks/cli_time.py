"""Item 6: how long `adclick-ops graph` takes, wall time of the whole process.

`graph` reads the validated pipeline files and prints the graph dag-factory renders from them (target:
under 2 s); `graph --airflow` builds the DAG with dag-factory and Airflow (reported, no target). The
commands of CI (validate, plan) are item 7, ci_commands.py. Best of several runs, bytecode cached. Prints a
table and writes benchmarks/results/cli_time.json.

    .venv/bin/python benchmarks/cli_time.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import PYCACHE, load, table, verdict, write  # noqa: E402

TARGETS = {"graph Airflow_Lab2": 2.0}
COMMANDS = {"graph Airflow_Lab2": ["graph", "Airflow_Lab2"], "graph Airflow_Lab2 --airflow": ["graph", "Airflow_Lab2", "--airflow"]}


def main(runs: int = 5) -> dict:
    exe = str(Path(sys.executable).parent / "adclick-ops")
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for args in COMMANDS.values():  # warm-up: bytecode cache
        subprocess.run([exe, *args], env=env, capture_output=True, check=True, cwd=_common.ROOT)
    for _ in range(runs):
        for name, args in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run([exe, *args], env=env, capture_output=True, check=True, cwd=_common.ROOT)
            times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    checks = {name: {"value": best[name], "target": f"< {limit:g} s", "met": best[name] < limit} for name, limit in TARGETS.items()}
    print(f"\nCLI wall time, best of {runs} (load {load()})")
    print(
        table(
            ["command", "best s", "all runs s", "target", ""],
            [
                [
                    name,
                    f"{best[name]:.2f}",
                    ", ".join(f"{t:.2f}" for t in times[name]),
                    checks[name]["target"] if name in checks else "-",
                    verdict(checks[name]["met"]) if name in checks else "",
                ]
                for name in COMMANDS
            ],
        )
    )
    result = {"runs": runs, "seconds": times, "best": best, "targets": checks}
    write(_common.result_name("cli_time"), result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    main(parser.parse_args().runs)
