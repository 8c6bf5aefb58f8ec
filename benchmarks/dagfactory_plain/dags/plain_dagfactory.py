"""Plain dag-factory: render airflow_lab2.dagfactory.yaml as it is, without adclick-ops validation (benchmark only)."""

import os

os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")

from dagfactory import load_yaml_dags  # noqa: E402

load_yaml_dags(globals(), config_filepath=os.path.join(os.path.dirname(os.path.abspath(__file__)), "airflow_lab2.dagfactory.yaml"))
