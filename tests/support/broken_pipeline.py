"""A pipeline file broken while its last valid version exists, as the DAG file really files and renders it
(adclick_ops.render inside a DagBag): the import error and the DAG that the stub Airflow answers with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.support import PROJECT
from tests.support.airflow_stub import set_state

LAB2 = "airflow_lab2.yaml"


def render_broken(root: Path) -> dict:
    """Render a copy of pipelines/ in `root` once valid (which keeps its last valid version), then with a
    misspelled scaler and an HTML-looking typo: the import error Airflow files and the DAG it keeps."""
    from airflow.dag_processing.dagbag import DagBag

    from adclick_ops.render import render

    pipelines = root / "pipelines"
    shutil.copytree(PROJECT / "pipelines", pipelines)
    (root / "dags" / "data").mkdir(parents=True)
    shutil.copy(PROJECT / "dags" / "data" / "advertising.csv", root / "dags" / "data" / "advertising.csv")

    def parse() -> tuple[dict, dict]:
        bag = DagBag(str(pipelines), collect_dags=False)
        dags: dict = {}

        def process_file(self) -> None:
            render(dags, pipelines)

        process_file(bag)
        return dags, bag.import_errors

    parse()
    text = (pipelines / LAB2).read_text()
    (pipelines / LAB2).write_text(
        text.replace("scalers: [minmax, standard]", "scalers: [robsut]").replace("catchup: false", "catchup: '<b>x</b>'")
    )
    dags, errors = parse()
    ((path, trace),) = errors.items()
    dag = dags["Airflow_Lab2"]
    return {
        "filename": os.path.relpath(path, root / "dags"),  # as Airflow names it: relative to the DAG bundle
        "stack_trace": trace,
        "details": {"tags": [{"name": t, "dag_id": "Airflow_Lab2"} for t in sorted(dag.tags)], "doc_md": dag.doc_md},
    }


def broken(airflow, render: dict, *, import_error: bool = True) -> None:
    """The stub Airflow: the latest run succeeded, and the file rendered by `render_broken` is broken."""
    set_state(airflow, "success")
    airflow.import_errors = [{"filename": render["filename"], "stack_trace": render["stack_trace"]}] if import_error else []
    airflow.dag_details = render["details"]
