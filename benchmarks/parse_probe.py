"""Run in a fresh process: parse one DAG folder as Airflow's DAG processor does (a DagBag), print JSON.

Airflow is imported before the clock starts (the DAG processor has it loaded); everything the DAG
files import themselves is inside the measurement.
"""

import json
import sys
import time

from airflow.models.dagbag import DagBag

folder = sys.argv[1]
start = time.perf_counter()
bag = DagBag(folder, include_examples=False, safe_mode=True)
elapsed = time.perf_counter() - start
print("@@" + json.dumps({
    "ms": elapsed * 1000,
    "dags": sorted(bag.dag_ids),
    "tasks": sum(len(d.tasks) for d in bag.dags.values()),
    "import_errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()},
    "files": {s.file: s.duration.total_seconds() * 1000 for s in bag.dagbag_stats},
    "heavy_modules": sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("pandas", "sklearn", "scipy", "flask")}),
}))
