"""Airflow's local settings for adclick-ops: Airflow imports this file in each of its processes.

Under docker-compose.yaml it is /opt/airflow/config/airflow_local_settings.py (this folder is
mounted there); on the embedded default the stack puts this folder on PYTHONPATH. In the scheduler
of a LocalExecutor and in a Celery worker, it preloads the modules each task's parse of the DAG file
imports (adclick_ops.preload); ADCLICK_OPS_PRELOAD=false turns that off.
"""

import sys


def _preload() -> None:
    try:
        from adclick_ops.preload import preload_for_command
    except ImportError:  # adclick-ops is not installed in this Airflow: nothing to preload
        return
    preload_for_command(sys.argv)


_preload()
