"""The Flask application factory of the monitor: settings, the shared run source, security headers."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from adclick_ops.airflow_api import AirflowClient
from adclick_ops.config.vocabulary import AIRFLOW_URL, ENV_AIRFLOW_URL, ENV_MODEL_DIR, ENV_PIPELINES, TRAINING_DAG_ID
from adclick_ops.monitor.cache import TTLCache
from adclick_ops.monitor.runs import RunSource

log = logging.getLogger(__name__)

EXTENSION_KEY = "adclick_monitor"

# Setting -> environment variable that provides it when create_app's argument does not.
ENVIRONMENT = {
    "AIRFLOW_URL": ENV_AIRFLOW_URL,
    "AIRFLOW_UI_URL": "ADCLICK_AIRFLOW_UI_URL",
    "AIRFLOW_USER": "ADCLICK_AIRFLOW_USER",
    "AIRFLOW_PASSWORD": "ADCLICK_AIRFLOW_PASSWORD",
    "DAG_ID": "ADCLICK_MONITOR_DAG_ID",
    "CACHE_TTL": "ADCLICK_MONITOR_CACHE_TTL",
    "MODEL_DIR": ENV_MODEL_DIR,
    "PIPELINES": ENV_PIPELINES,
    "PREDICT_REFRESH": "ADCLICK_PREDICT_REFRESH",
}
DEFAULTS: dict[str, Any] = {
    "AIRFLOW_URL": AIRFLOW_URL,
    "AIRFLOW_UI_URL": None,  # None: the same as AIRFLOW_URL
    "AIRFLOW_USER": "airflow",
    "AIRFLOW_PASSWORD": "airflow",
    "DAG_ID": TRAINING_DAG_ID,
    "CACHE_TTL": 5.0,  # seconds; 0 turns the cache off
    "AIRFLOW_CONNECT_TIMEOUT": 2.0,
    "AIRFLOW_READ_TIMEOUT": 5.0,
    "AIRFLOW_DEADLINE": 5.0,  # seconds one call to Airflow may take in all, body included
    "AIRFLOW_WAIT": 2.0,  # seconds a request may wait on Airflow in all (every question it asks) before answering with what it has
    "HEALTH_WAIT": 0.5,  # the same for /health, whose question to Airflow's health endpoint is asked anew by each request
    "MAX_WAITERS": None,  # requests of one process that may wait on Airflow at once; None: no limit
    "CHART_RUNS": 20,
    "MODEL_DIR": None,  # None: the DAG's training.model_dir in the pipeline files
    "PIPELINES": None,  # None: pipelines/ of the project
    "PREDICT_REFRESH": 1.0,  # seconds between two looks at the champion pointer
}

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_NO_STORE = ("Cache-Control", "no-store")


class _Response(Response):
    """A page's text as UTF-8, where a lone surrogate from Airflow's JSON ("\\ud800" in a note or an error) is a "?"
    rather than a UnicodeEncodeError; JSON answers escape it and are unchanged."""

    def set_data(self, value: bytes | str) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8", "replace")
        super().set_data(value)


def _settings(config: dict[str, Any] | None) -> dict[str, Any]:
    settings = dict(DEFAULTS)
    for key, env in ENVIRONMENT.items():
        if os.environ.get(env):
            settings[key] = os.environ[env]
    settings.update({k: v for k, v in (config or {}).items() if v is not None})
    for key in ("CACHE_TTL", "AIRFLOW_CONNECT_TIMEOUT", "AIRFLOW_READ_TIMEOUT", "AIRFLOW_DEADLINE", "AIRFLOW_WAIT", "HEALTH_WAIT"):
        try:
            settings[key] = float(settings[key])
        except (TypeError, ValueError):
            raise ValueError(f"monitor setting {key} must be a number of seconds, got {settings[key]!r}") from None
        if not math.isfinite(settings[key]) or settings[key] < 0:
            raise ValueError(f"monitor setting {key} must be a number of seconds from 0, got {settings[key]!r}")
    settings["CHART_RUNS"] = int(settings["CHART_RUNS"])
    settings["AIRFLOW_URL"] = str(settings["AIRFLOW_URL"]).rstrip("/")
    settings["AIRFLOW_UI_URL"] = str(settings["AIRFLOW_UI_URL"] or settings["AIRFLOW_URL"]).rstrip("/")
    return settings


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the monitor. `config` overrides the environment, which overrides DEFAULTS."""
    app = Flask(__name__)
    app.response_class = _Response
    app.config.update(_settings(config))
    # Whatever the caller passed: no debugger, no tracebacks in pages.
    app.config["DEBUG"] = False
    app.debug = False
    # Static files keep their names from one installed version to the next: "no-cache" with an ETag and a
    # Last-Modified, so that a browser asks again on each use (a 304 while unchanged) and never shows an
    # older version's style sheet; no max-age, whatever the caller passed.
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = None
    app.json.sort_keys = False

    client = AirflowClient(
        app.config["AIRFLOW_URL"],
        str(app.config["AIRFLOW_USER"]),
        str(app.config["AIRFLOW_PASSWORD"]),
        connect_timeout=app.config["AIRFLOW_CONNECT_TIMEOUT"],
        read_timeout=app.config["AIRFLOW_READ_TIMEOUT"],
        deadline=app.config["AIRFLOW_DEADLINE"],
    )
    waiters = app.config["MAX_WAITERS"]
    cache = TTLCache(app.config["CACHE_TTL"], wait=app.config["AIRFLOW_WAIT"], max_waiters=None if waiters is None else int(waiters))
    app.extensions[EXTENSION_KEY] = RunSource(
        client, app.config["DAG_ID"], app.config["AIRFLOW_UI_URL"], cache, health_wait=app.config["HEALTH_WAIT"]
    )

    from adclick_ops.monitor.views import bp

    app.register_blueprint(bp)
    # the champion's predictions and the model versions: /api/predict, /models, /api/models
    from adclick_ops.monitor import predict

    predict.init_app(app, [*SECURITY_HEADERS.items(), _NO_STORE])
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _security_headers(response: Response) -> Response:
    # No view sets these, so extend (a list append) rather than setdefault (a scan per header).
    response.headers.extend(SECURITY_HEADERS)
    # static files keep their own ("no-cache"), the icon too; getlist, because `in` and get() pay for a KeyError when it is absent
    if not response.headers.getlist("Cache-Control"):
        response.headers.add(*_NO_STORE)
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/health"


def _http_error(exc: HTTPException) -> tuple[Any, int]:
    code = exc.code or 500
    if _wants_json():
        return jsonify({"error": exc.name, "status": code}), code
    return render_template("error.html", code=code, title=exc.name), code


def _unexpected_error(exc: Exception) -> tuple[Any, int]:
    # A bug of the monitor, not a state of Airflow: logged in full, shown as one line, no traceback.
    log.exception("monitor error on %s", request.path)
    if _wants_json():
        return jsonify({"error": "internal error of the monitor", "status": 500}), 500
    return render_template("error.html", code=500, title="Internal error of the monitor"), 500
