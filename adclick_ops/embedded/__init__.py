"""The embedded Airflow of `adclick-ops run`: its home and processes, the run command, a local SMTP sink."""
