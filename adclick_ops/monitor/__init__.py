"""The Flask monitor of the training runs: reads Airflow's REST API, serves pages and JSON on port 5555.

`create_app` builds the application; `server.serve` runs it (gunicorn or waitress) and
`ensure.ensure_monitor` is what the start_Flask_API task calls.
"""

from adclick_ops.monitor.app import create_app

__all__ = ["create_app"]
