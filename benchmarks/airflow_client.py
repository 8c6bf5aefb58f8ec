"""Our Airflow REST client (adclick_ops.airflow_api, on requests) against the official apache-airflow-client.

Both read the same thing from the test suite's Airflow stub: the 20 latest runs of a DAG, as the
monitor does on every cache miss. For each: the import time in a fresh interpreter (bytecode
cached, best of --runs) and the time per call over --calls calls (best of --runs). The official
client is measured in a separate environment, made with uv unless --client-python names one.

    .venv/bin/python benchmarks/airflow_client.py [--runs 5] [--calls 300] [--client-python PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "airflow_client.json"
OFFICIAL_PIN = "apache-airflow-client==3.3.2"

OURS_IMPORT = "from adclick_ops.airflow_api import AirflowClient"
OURS_CALLS = """
client = AirflowClient(URL, "airflow", "airflow")
def call():
    return len(client.recent_runs("Airflow_Lab2", 20))
"""
OFFICIAL_IMPORT = "import airflow_client.client as ac"
OFFICIAL_CALLS = """
import requests
token = requests.post(URL + "/auth/token", json={"username": "airflow", "password": "airflow"}, timeout=5).json()["access_token"]
api = ac.DagRunApi(ac.ApiClient(ac.Configuration(host=URL, access_token=token)))
def call():
    return len(api.get_dag_runs("Airflow_Lab2", limit=20, order_by=["-run_after"]).dag_runs)
"""
PROBE = """
import json, time
t = time.perf_counter()
{imports}
imported = time.perf_counter() - t
URL = {url!r}
{calls}
assert call() == 20
t = time.perf_counter()
for _ in range({n}):
    call()
print(json.dumps({{"import_s": imported, "call_s": (time.perf_counter() - t) / {n}}}))
"""


def _run_stub(ready: Any) -> None:
    sys.path.insert(0, str(ROOT))  # the tests package, for its Airflow API stub
    from datetime import timedelta

    from tests.support.airflow_stub import T0, AirflowStub, dag_run

    stub = AirflowStub().start()
    stub.runs = [dag_run(f"manual__{i}", "success", started=T0 + timedelta(hours=i)) for i in range(20)]
    ready.put(stub.url)
    multiprocessing.Event().wait()  # until terminated


def _official_python(given: str | None, work: Path) -> str:
    if given:
        return given
    uv = Path(sys.executable).parent / "uv"
    venv = work / "official"
    subprocess.run([str(uv), "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    subprocess.run([str(uv), "pip", "install", "-q", "-p", str(venv / "bin" / "python"), OFFICIAL_PIN, "requests"], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "compileall", "-q", str(venv / "lib")], check=False)
    return python


def _measure(python: str, imports: str, calls: str, url: str, n: int, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs + 1):  # the first writes the bytecode cache; not counted
        code = PROBE.format(imports=imports, calls=calls, url=url, n=n)
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    samples = samples[1:]
    return {"import_ms": min(s["import_s"] for s in samples) * 1000, "call_ms": min(s["call_s"] for s in samples) * 1000}


def main(runs: int, calls: int, client_python: str | None) -> dict[str, Any]:
    ready = multiprocessing.Queue()
    stub = multiprocessing.Process(target=_run_stub, args=(ready,), daemon=True)
    stub.start()
    try:
        url = ready.get(timeout=60)
        with tempfile.TemporaryDirectory() as work:
            official = _official_python(client_python, Path(work))
            result = {
                "runs": runs,
                "calls": calls,
                "ours (requests)": _measure(sys.executable, OURS_IMPORT, OURS_CALLS, url, calls, runs),
                f"official ({OFFICIAL_PIN})": _measure(official, OFFICIAL_IMPORT, OFFICIAL_CALLS, url, calls, runs),
            }
    finally:
        stub.terminate()
    print(f"\nAirflow REST client: import (fresh interpreter) and one GET of 20 runs, best of {runs}, {calls} calls each")
    print(f"{'client':<40} {'import ms':>10} {'ms per call':>12}")
    for name, row in result.items():
        if isinstance(row, dict):
            print(f"{name:<40} {row['import_ms']:>10.0f} {row['call_ms']:>12.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--client-python", default=None, help="a Python with apache-airflow-client installed (default: made with uv)")
    args = parser.parse_args()
    main(args.runs, args.calls, args.client_python)
