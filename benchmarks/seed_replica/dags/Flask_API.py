# Replica of the seed's dags/Flask_API.py: a DAG whose task serves a Flask app on port 5555.
import os
import time
from datetime import datetime

from airflow import DAG
from airflow.providers.standard.operators.python import PythonOperator
from flask import Flask, redirect, render_template

SUFFIX = os.environ.get("SEED_DAG_SUFFIX", "")
HERE = os.path.dirname(os.path.abspath(__file__))

app = Flask(__name__, template_folder=os.path.join(HERE, "templates"))


def check_dag_status():
    # The seed read the last run's state here; a constant keeps the replica self-contained.
    return True


@app.route("/")
def index():
    return redirect("/success") if check_dag_status() else redirect("/failure")


@app.route("/success")
def success():
    return render_template("success.html")


@app.route("/failure")
def failure():
    return render_template("failure.html")


@app.route("/health")
def health():
    return "ok"


def start_flask_app():
    serve_for = os.environ.get("SEED_FLASK_SERVE_FOR")
    if serve_for:  # benchmarks: do not hold an executor slot forever
        time.sleep(float(serve_for))
        return
    app.run(host="0.0.0.0", port=int(os.environ.get("SEED_FLASK_PORT", "5555")))


dag = DAG(
    "Airflow_Lab2_Flask" + SUFFIX,
    default_args={"owner": "airflow", "start_date": datetime(2024, 1, 1), "retries": 0},
    description="DAG to manage Flask API lifecycle",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    tags=["Flask_Api"],
    max_active_runs=1,
)

start_flask_API = PythonOperator(task_id="start_Flask_API", python_callable=start_flask_app, dag=dag)
