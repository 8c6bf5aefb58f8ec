"""adclick-ops: an ad-click prediction pipeline on Apache Airflow, declared in validated YAML (README.md, "Where things are")."""
