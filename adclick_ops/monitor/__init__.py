"""The Flask monitor of the training runs: reads Airflow's REST API, serves pages and JSON on port 5555.

`create_app` builds the application; `service.ensure_monitor` and `service.serve` run it under waitress.
"""

from adclick_ops.monitor.app import create_app

__all__ = ["create_app"]
