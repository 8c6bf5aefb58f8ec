# Replica of the seed's dags/main.py (hand-written Airflow_Lab2), for benchmarks only.
import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.smtp.operators.smtp import EmailOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.utils.trigger_rule import TriggerRule

from src.model_development import build_model, data_preprocessing, load_data, load_model, separate_data_outputs

SUFFIX = os.environ.get("SEED_DAG_SUFFIX", "")

default_args = {
    "owner": "airflow",
    "start_date": datetime(2024, 1, 1),
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}

dag = DAG(
    "Airflow_Lab2" + SUFFIX,
    default_args=default_args,
    description="Airflow-Lab2 DAG Description",
    schedule=os.environ.get("SEED_SCHEDULE", "@daily") or None,
    catchup=False,
    tags=["example"],
    owner_links={"airflow": "https://github.com/apache/airflow"},
    max_active_runs=1,
)

owner_task = PythonOperator(task_id="load_data_task", python_callable=load_data, dag=dag)

data_preprocessing_task = PythonOperator(
    task_id="data_preprocessing_task",
    python_callable=data_preprocessing,
    op_args=[owner_task.output],
    dag=dag,
)

separate_data_outputs_task = PythonOperator(
    task_id="separate_data_outputs_task",
    python_callable=separate_data_outputs,
    op_args=[data_preprocessing_task.output],
    dag=dag,
)

build_save_model_task = PythonOperator(
    task_id="build_save_model_task",
    python_callable=build_model,
    op_args=[separate_data_outputs_task.output, "model.sav"],
    dag=dag,
)

load_model_task = PythonOperator(
    task_id="load_model_task",
    python_callable=load_model,
    op_args=[separate_data_outputs_task.output, "model.sav"],
    dag=dag,
)

send_email = EmailOperator(
    task_id="send_email",
    to="ml-team@example.com",
    subject="Notification from Airflow",
    html_content="<p>This is a notification email sent from Airflow.</p>",
    conn_id="smtp_default",
    dag=dag,
)

trigger_dag_task = TriggerDagRunOperator(
    task_id="my_trigger_task",
    trigger_dag_id="Airflow_Lab2_Flask" + SUFFIX,
    trigger_rule=TriggerRule.ALL_DONE,
    wait_for_completion=False,
    dag=dag,
)

owner_task >> data_preprocessing_task >> separate_data_outputs_task >> build_save_model_task >> load_model_task
load_model_task >> [send_email, trigger_dag_task]
