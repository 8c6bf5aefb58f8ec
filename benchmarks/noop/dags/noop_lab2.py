"""Airflow's own floor for item 3: the graph of Airflow_Lab2 with tasks that do nothing.

Same DAG id, task ids and edges as pipelines/airflow_lab2.yaml renders; every task is a
PythonOperator whose callable returns at once, and the DAG file imports nothing but Airflow. The
time `airflow dags test` takes on it is what Airflow spends on the graph itself: no DAG file can
do better.
"""

import datetime as dt
import itertools
import os

from airflow import DAG
from airflow.providers.standard.operators.python import PythonOperator


def nothing() -> None:
    return None


# NOOP_DAG_SUFFIX lets it share one DAG bundle with ours and the seed replica (benchmarks/end_to_end.py (ii)).
with DAG(
    "Airflow_Lab2" + os.environ.get("NOOP_DAG_SUFFIX", ""), schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), catchup=False
):
    tasks = {
        task_id: PythonOperator(task_id=task_id, python_callable=nothing)
        for task_id in (
            "load_data_task",
            "data_preprocessing_task",
            "separate_data_outputs_task",
            "build_save_model_task",
            "load_model_task",
            "send_email",
            "my_trigger_task",
        )
    }
    chain = list(tasks)[:5]  # load_data_task ... load_model_task, in order
    for upstream, downstream in itertools.pairwise(chain):
        tasks[upstream] >> tasks[downstream]
    tasks["load_model_task"] >> [tasks["send_email"], tasks["my_trigger_task"]]
