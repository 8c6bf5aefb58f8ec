"""Parse DAG folders the way Airflow's DAG processor does, printing one JSON line per parse.

Like the DAG processor, this process imports Airflow once, then forks a fresh child for each parse;
the child builds a DagBag of the folder (bundle path on sys.path, as Airflow 3 does). Everything the
DAG files import themselves is inside the measurement, since no child inherits it.

    python parse_probe.py ROUNDS FOLDER [FOLDER ...]   (folders interleaved, ROUNDS times)
"""

import json
import os
import sys
import time

started = time.perf_counter()
from airflow.models.dagbag import BundleDagBag  # noqa: E402

AIRFLOW_IMPORT_MS = (time.perf_counter() - started) * 1000
HEAVY = ("pandas", "sklearn", "scipy", "flask", "pydantic", "dagfactory")


def parse(folder: str) -> dict:
    start = time.perf_counter()
    bag = BundleDagBag(folder, bundle_path=folder, safe_mode=True)
    elapsed = time.perf_counter() - start
    return {
        "folder": folder,
        "ms": elapsed * 1000,
        "dags": sorted(bag.dag_ids),
        "tasks": sum(len(d.tasks) for d in bag.dags.values()),
        "import_errors": {k: str(v)[-800:] for k, v in bag.import_errors.items()},
        "files_ms": {s.file: s.duration.total_seconds() * 1000 for s in bag.dagbag_stats},
        "modules_loaded": sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in HEAVY}),
        "airflow_import_ms": AIRFLOW_IMPORT_MS,
    }


def in_child(folder: str) -> dict:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            payload = json.dumps(parse(folder)).encode()
        except BaseException as exc:  # report, never fall back into the parent's loop
            payload = json.dumps({"folder": folder, "error": repr(exc)}).encode()
        with os.fdopen(write, "wb") as w:
            w.write(payload)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as r:
        data = r.read()
    os.waitpid(pid, 0)
    return json.loads(data)


if __name__ == "__main__":
    rounds, folders = int(sys.argv[1]), sys.argv[2:]
    for _ in range(rounds):
        for folder in folders:
            print("@@" + json.dumps(in_child(folder)), flush=True)
