"""The floor of the parse benchmark: our graph written by hand, heavy imports inside the callables.

Same DAGs, operators, callables and arguments as pipelines/*.yaml renders (adclick_ops.tasks imports
pandas and scikit-learn only when a task runs); no YAML, no validation, no dag-factory.
"""

import datetime as dt
import itertools
import os

from airflow import DAG
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

from adclick_ops import tasks
from adclick_ops.operators import ReportEmailOperator

ROOT = os.environ.get("ADCLICK_OPS_HOME", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
TO = ["ml-team@example.com"]
REPORT = "{% set m = ti.xcom_pull(task_ids='load_model_task') or {} %}{{ dag.dag_id }}: accuracy {{ m.get('accuracy') }}"
SETTINGS = {
    "dataset": f"{ROOT}/dags/data/advertising.csv",
    "target": "Clicked on Ad",
    "features": ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"],
    "split": {"test_size": 0.3, "random_state": 42, "stratify": False},
    "scalers": ["minmax", "standard"],
    "estimator": {"name": "logistic_regression", "params": {"max_iter": 1000}},
    "min_accuracy": None,
    "model_dir": f"{ROOT}/model",
    "model_file": "model.sav",
    "artifacts_root": f"{ROOT}/runs",
    "dag_id": "Airflow_Lab2",
}
DEFAULT_ARGS = {
    "owner": "adclick-ops",
    "retries": 1,
    "retry_delay": dt.timedelta(seconds=30),
    "start_date": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
}
failure = SmtpNotifier(
    to=TO,
    subject="[adclick-ops] FAILED {{ dag.dag_id }}.{{ ti.task_id }} run {{ run_id }}",
    html_content="<pre>{{ exception | default('(see the log)', true) }}</pre>",
    smtp_conn_id="smtp_default",
)

with DAG(
    "Airflow_Lab2",
    description="Train the ad-click model, evaluate it, e-mail the report and trigger the monitor.",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    tags=["adclick", "ml"],
    default_args={**DEFAULT_ARGS, "on_failure_callback": failure},
):
    steps = [
        PythonOperator(task_id=task_id, python_callable=func, op_kwargs={"settings": SETTINGS})
        for task_id, func in (
            ("load_data_task", tasks.load_data),
            ("data_preprocessing_task", tasks.preprocess),
            ("separate_data_outputs_task", tasks.separate_data_outputs),
            ("build_save_model_task", tasks.build_save_model),
            ("load_model_task", tasks.load_model),
        )
    ]
    send_email = ReportEmailOperator(
        task_id="send_email",
        to=TO,
        subject="[adclick-ops] {{ dag.dag_id }} run {{ run_id }}",
        html_content=f"<p>{REPORT}</p>",
        text_content=REPORT,
        conn_id="smtp_default",
    )
    trigger = TriggerDagRunOperator(
        task_id="my_trigger_task",
        trigger_dag_id="Airflow_Lab2_Flask",
        conf={"upstream_dag_id": "{{ dag.dag_id }}", "upstream_run_id": "{{ run_id }}"},
        wait_for_completion=False,
        trigger_rule="all_done",
    )
    for upstream, downstream in itertools.pairwise(steps):
        upstream >> downstream
    steps[-1] >> [send_email, trigger]

with DAG(
    "Airflow_Lab2_Flask",
    description="Bring up the Flask monitor of the training runs on port 5555.",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    tags=["adclick", "monitor"],
    default_args=DEFAULT_ARGS,
):
    PythonOperator(
        task_id="start_Flask_API",
        python_callable=tasks.start_flask_api,
        op_kwargs={
            "settings": {
                "host": "127.0.0.1",
                "port": 5555,
                "airflow_url": "http://localhost:8080",
                "dag_id": "Airflow_Lab2",
                "serve_for": None,
            }
        },
    )
