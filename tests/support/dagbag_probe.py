"""Run in a subprocess with an Airflow environment: parse dags/ like the DAG processor, print JSON."""

import json
import sys

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(sys.argv[1])
report = {
    "import_errors": bag.import_errors,
    "warnings": bag.captured_warnings,
    "dags": {},
    "heavy_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "sklearn", "scipy")),
}
for dag_id, dag in bag.dags.items():
    tasks = {}
    for t in dag.tasks:
        info = {
            "operator": type(t).__name__,
            "downstream": sorted(t.downstream_task_ids),
            "trigger_rule": getattr(t.trigger_rule, "value", str(t.trigger_rule)),
        }
        for attr in ("to", "subject", "conn_id", "trigger_dag_id", "conf", "op_kwargs"):
            if hasattr(t, attr):
                info[attr] = getattr(t, attr)
        info["retry_delay"] = t.retry_delay.total_seconds()
        info["retries"] = t.retries
        info["on_failure_callback"] = [type(c).__name__ for c in (t.on_failure_callback or [])]
        info["on_retry_callback"] = [type(c).__name__ for c in (t.on_retry_callback or [])]
        tasks[t.task_id] = info
    report["dags"][dag_id] = {
        "tasks": tasks,
        "schedule": str(dag.schedule),
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "fileloc": dag.fileloc,
        "doc_md": dag.doc_md,
    }
print("@@" + json.dumps(report, default=str))
