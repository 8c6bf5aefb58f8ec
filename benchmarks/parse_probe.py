"""Parse DAG folders the way Airflow's DAG processor does, printing one JSON line per parse.

As in Airflow 3.1's DAG processor: this process imports Airflow once (the long-lived manager); for
each parse it forks a "manager" child that pre-imports the `airflow.*` modules named in the folder's
files ([dag_processor] parsing_pre_import_modules, on by default; the real manager keeps them for
its lifetime), which forks the parse process: a DagBag of the folder, bundle path on sys.path,
load_op_links=False. Everything else the DAG files import is inside the measurement.

    python parse_probe.py ROUNDS FOLDER[@PIPELINES] ...   (folders interleaved, ROUNDS times)

FOLDER@PIPELINES parses FOLDER with ADCLICK_OPS_PIPELINES=PIPELINES (the scale benchmark).
"""

import json
import os
import sys
import time
from pathlib import Path

started = time.perf_counter()
from airflow.dag_processing.dagbag import BundleDagBag  # noqa: E402

AIRFLOW_IMPORT_MS = (time.perf_counter() - started) * 1000
HEAVY = ("pandas", "sklearn", "scipy", "flask", "pydantic", "dagfactory")


def parse(folder: str, label: str) -> dict:
    start = time.perf_counter()
    bag = BundleDagBag(folder, bundle_path=folder, safe_mode=True, load_op_links=False)
    elapsed = time.perf_counter() - start
    return {
        "folder": label,
        "ms": elapsed * 1000,
        "dags": sorted(bag.dag_ids),
        "tasks": sum(len(d.tasks) for d in bag.dags.values()),
        "import_errors": {k: str(v)[-800:] for k, v in bag.import_errors.items()},
        "files_ms": {s.file: s.duration.total_seconds() * 1000 for s in bag.dagbag_stats},
        "modules_loaded": sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in HEAVY}),
        "airflow_import_ms": AIRFLOW_IMPORT_MS,
    }


def pre_import(folder: str) -> None:
    import structlog
    from airflow.dag_processing.processor import _pre_import_airflow_modules

    for path in sorted(Path(folder).rglob("*.py")):
        _pre_import_airflow_modules(str(path), structlog.get_logger())


def in_child(arg: str, manager: bool = True) -> dict:
    folder = arg.partition("@")[0]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            if manager:
                pipelines = arg.partition("@")[2]
                if pipelines:
                    os.environ["ADCLICK_OPS_PIPELINES"] = pipelines
                pre_import(folder)
                payload = json.dumps(in_child(arg, manager=False)).encode()
            else:
                payload = json.dumps(parse(folder, arg)).encode()
        except BaseException:  # report, never fall back into the parent's loop
            import traceback

            payload = json.dumps({"folder": arg, "error": traceback.format_exc()}).encode()
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
