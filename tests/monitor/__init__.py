"""Tests of the monitor (adclick_ops.monitor)."""

# The waits on Airflow of the apps that the page tests build. Their stub Airflow answers at once, but a loaded
# machine (the whole suite on two cores) may take more than the 2 s of AIRFLOW_WAIT for the questions of one
# page (a page that reads 20 runs asks Airflow over 20 things): a page that ran out of it would show "Airflow is
# unreachable" and the test would test that instead of what it means to. Tests of the waits themselves set their own.
PATIENT = {"AIRFLOW_WAIT": 30.0, "HEALTH_WAIT": 30.0}
