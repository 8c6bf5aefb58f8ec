"""Airflow DAGs of adclick-ops, rendered from the validated YAML files in pipelines/ by dag-factory.

Nothing about the pipelines is written here: edit pipelines/*.yaml and run `adclick-ops validate`.
"""

from adclick_ops.loader import render

render(globals())
