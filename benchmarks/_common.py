"""What the benchmarks share: the project paths, an Airflow environment, the machine, the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
PYTHON = sys.executable
SEED_DAGS = BENCH / "seed_replica" / "dags"
FLOOR_DAGS = BENCH / "floor" / "dags"
PLAIN_DAGS = BENCH / "dagfactory_plain" / "dags"
NOOP_DAGS = BENCH / "noop" / "dags"
OUR_DAGS = ROOT / "dags"

sys.path.insert(0, str(ROOT))


# The project whose dags/ and adclick_ops/ are measured as "ours": this checkout, or a copy holding a
# candidate change (`--project /tmp/copy`, which then comes first on PYTHONPATH).
PROJECT = Path(os.environ.get("ADCLICK_BENCH_PROJECT", ROOT)).resolve()


def use_project(path: str | None) -> None:
    """Measure the copy at `path` as ours: its dags/, adclick_ops/ and config/embedded.env."""
    global PROJECT, OUR_DAGS
    if path:
        import adclick_ops.embedded.stack

        os.environ["ADCLICK_BENCH_PROJECT"] = str(Path(path).resolve())
        PROJECT = Path(path).resolve()
        OUR_DAGS = PROJECT / "dags"
        adclick_ops.embedded.stack.ENV_TEMPLATE = PROJECT / "config" / "embedded.env"


def airflow_env(home: Path, dags_folder: Path, extra: dict[str, str] | None = None, api_port: int = 8080) -> dict[str, str]:
    """The embedded Airflow environment (config/embedded.env) with `home` and `dags_folder`."""
    from adclick_ops.embedded.stack import airflow_env as embedded

    base = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
        "ADCLICK_OPS_HOME": str(PROJECT),
        "ADCLICK_OPS_PIPELINES": str(PROJECT / "pipelines"),
    }
    if PROJECT != ROOT:
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))
    base.update(extra or {})
    return embedded(home, api_port=api_port, extra=base)


PYCACHE = RESULTS / "pycache"
NO_PYCACHE = RESULTS / "no-pycache"  # stays empty: nothing is written there


def bytecode(env: dict[str, str], cached: bool) -> dict[str, str]:
    """`env` with Python's bytecode cache on or off.

    On: .pyc files are read from and written to benchmarks/results/pycache, so that every variant
    imports from bytecode as a deployed Airflow does (Airflow's images ship .pyc files, `make`
    compiles them into .venv, and Python writes them at the first import).
    Off: every module is compiled from source at every import, as in a shell with
    PYTHONDONTWRITEBYTECODE=1 and a virtualenv installed without bytecode. The cache prefix points
    at an empty folder, so the .pyc files inside .venv are not read either.
    """
    env = dict(env)
    if cached:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(NO_PYCACHE)
    return env


MODES = {"cached": "bytecode cached (.pyc)", "none": "no bytecode cache (every import compiles)"}


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "free_h": free,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
    }


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def result_name(base: str, candidate: bool = False) -> str:
    """The results file's name: `base`, or `base-candidate` when measuring a copy (--project) or a change (--env)."""
    return f"{base}-candidate" if candidate or PROJECT != ROOT else base


def write(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))  # noqa: E731
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
