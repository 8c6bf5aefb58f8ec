"""The ML steps as plain functions over arrays and DataFrames: no Airflow, Flask, YAML or files of a run."""
