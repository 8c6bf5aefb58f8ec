"""POST /api/predict: click probabilities from the champion of the monitored DAG; /models and /api/models: its versions.

The champion is read from the model registry and cached; the pointer is checked again at most every
PREDICT_REFRESH seconds, so a new champion (a run, a promote, a rollback) serves within seconds
without a restart. Reading the pointer is a stat() on a local folder, one HEAD on S3.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_content_length, get_input_stream

from adclick_ops import jsonio
from adclick_ops.predict import (
    MAX_ROWS,
    Champion,
    PredictInputError,
    load_champion,
    predictions_json,
    rows_to_matrix,
    score,
    shown,
)
from adclick_ops.registry.serialization import UnsafeModelError

log = logging.getLogger(__name__)

bp = Blueprint("predict", __name__)
EXTENSION_KEY = "adclick_models"
ENDPOINT_KEY = "adclick_predict"
PREDICT_PATH = "/api/predict"
REQUEST_MAX_DEPTH = 16  # {"rows": [{feature: value}]} is 3 deep
MAX_BODY_BYTES = 4 * 1024 * 1024  # 10,000 rows of five features take about 1.3 MB
# What Flask's jsonify writes in production: compact, ASCII, keys in the order given, a newline at the end.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


class ChampionStale(Exception):
    """The champion pointer is due for another look (ChampionSource.known)."""


class ChampionSource:
    """The monitored DAG's registry and its champion, loaded once per change of the pointer."""

    def __init__(self, dag_id: str, model_dir: str | None, pipelines: str | None, refresh: float):
        self.dag_id = dag_id
        self._model_dir = model_dir
        self._pipelines = pipelines
        self.refresh = refresh
        self._registry: Any = None
        self._champion: Champion | None = None
        self._tag: str | None = None
        self._checked = float("-inf")
        self._problem: str | None = None
        self._lock = threading.Lock()

    def registry(self) -> Any:
        if self._registry is None:
            from adclick_ops.registry import Registry
            from adclick_ops.registry.locate import registry_for

            if self._model_dir:
                self._registry = Registry(self._model_dir, self.dag_id)
            else:
                self._registry = registry_for(self.dag_id, self._pipelines)
        return self._registry

    def known(self) -> tuple[Champion | None, str | None]:
        """What `champion()` answers, from memory only: ChampionStale when it is time to look at the registry again."""
        if time.monotonic() - self._checked < self.refresh:
            return self._champion, self._problem
        raise ChampionStale

    def champion(self) -> tuple[Champion | None, str | None]:
        """The champion to serve (None with the reason when there is none)."""
        try:
            return self.known()
        except ChampionStale:
            pass
        with self._lock:
            if time.monotonic() - self._checked >= self.refresh:
                self._reload()
                self._checked = time.monotonic()
        return self._champion, self._problem

    def _reload(self) -> None:
        from adclick_ops.registry.registry import POINTER

        try:
            registry = self.registry()
            tag = registry.store.change_tag(POINTER)
            if tag == self._tag and self._champion is not None:
                return
            champion = load_champion(registry)
            self._champion, self._tag = champion, tag
            self._problem = (
                None if champion is not None else f"no champion yet for {self.dag_id} in {registry.location}; train a model first"
            )
            if champion is not None:
                log.info("serving version %s of %s", champion.version, self.dag_id)
        except Exception as exc:  # noqa: BLE001 - never serve a version that may no longer be champion: 503 with the reason
            log.error("cannot serve the champion of %s: %s", self.dag_id, exc)
            self._champion, self._tag = None, None
            self._problem = f"cannot serve the champion of {self.dag_id}: {exc}"


class PredictEndpoint:
    """POST /api/predict as a plain WSGI application, called before Flask's own request handling.

    One prediction is a small, hot request: Flask's request context, URL matching, response object and
    after-request hooks cost several times the scoring itself. This answers the route directly, with
    the same checks, messages and status codes as every other route, and the same security headers
    (`headers`). Every other request, and every other method on this path, goes to Flask.
    """

    def __init__(self, source: ChampionSource, headers: list[tuple[str, str]], max_bytes: int, max_rows: int):
        self.source = source
        self.headers = headers
        self.max_bytes = max_bytes
        self.max_rows = max_rows

    def answer(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The status and the JSON answer to the WSGI request in `environ`."""
        length = get_content_length(environ)  # None when absent or chunked, as for Flask's request.content_length
        refused = self.refuse_length(length)
        if refused is not None:
            return refused
        raw = get_input_stream(environ).read(self.max_bytes + 1)
        if len(raw) > self.max_bytes:
            return self.too_long()
        return self.answer_body(raw)

    def refuse_length(self, length: int | None) -> tuple[int, dict[str, Any]] | None:
        """The 400 for a declared body length beyond the bound, before reading it; None when it may be read."""
        if length is not None and length > self.max_bytes:
            return _error(f"request body: {length:,} bytes; at most {self.max_bytes:,} bytes per request")
        return None

    def too_long(self) -> tuple[int, dict[str, Any]]:
        """The 400 for a body found longer than the bound while reading it (chunked, or longer than declared)."""
        return _error(f"request body: more than {self.max_bytes:,} bytes; at most {self.max_bytes:,} bytes per request")

    def answer_body(self, raw: bytes, *, from_memory: bool = False) -> tuple[int, dict[str, Any]]:
        """The status and the JSON answer to a request body of at most max_bytes (both servers' lanes).

        With `from_memory`, the registry is not looked at (no I/O): ChampionStale when it is due."""
        try:
            rows = self._rows(raw)
        except _Refused as exc:
            return exc.status, exc.payload
        champion, problem = self.source.known() if from_memory else self.source.champion()
        if champion is None:
            return _error(problem or "no champion", 503)
        try:
            x = rows_to_matrix(rows, champion.features, self.max_rows)
        except PredictInputError as exc:
            return _error(str(exc))
        try:
            probability, clicked = score(champion.model, x)
        except UnsafeModelError as exc:  # a graph that loaded but cannot score these rows: the model's fault, not the client's
            log.error("version %s of %s cannot score: %s", champion.version, champion.dag_id, exc)
            return _error(f"version {champion.version} of {champion.dag_id} cannot score these rows: {exc}", 503)
        return 200, {"dag_id": champion.dag_id, "model_version": champion.version, "predictions": predictions_json(probability, clicked)}

    def _rows(self, raw: bytes) -> Any:
        """The rows of a body; _Refused (a 400) when it is not {"rows": [...]}."""
        try:
            # NaN, Infinity and 1e400 pass here: rows_to_matrix refuses them naming the row and the field
            body = jsonio.loads(raw, max_bytes=self.max_bytes, max_depth=REQUEST_MAX_DEPTH, strict_numbers=False)
        except ValueError as exc:
            raise _Refused(f"request body: {exc}") from None
        if not isinstance(body, dict) or "rows" not in body:
            raise _Refused('request body: expected {"rows": [{feature: value, ...}, ...]}')
        if len(body) > 1:
            extra = sorted(k for k in body if k != "rows")
            raise _Refused(f"request body: unknown field(s) {shown(', '.join(map(repr, extra)))}; expected only 'rows'")
        return body["rows"]

    @staticmethod
    def encode(payload: dict[str, Any]) -> bytes:
        """The answer's bytes: what Flask's jsonify writes in production."""
        return (_ENCODER.encode(payload) + "\n").encode()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            status, payload = self.answer(environ)
        except Exception:  # noqa: BLE001 - as the app's handler of unexpected errors: logged in full, one line answered
            log.exception("monitor error on %s", environ.get("PATH_INFO"))
            status, payload = 500, {"error": "internal error of the monitor", "status": 500}
        body = self.encode(payload)
        start_response(
            f"{status} {HTTP_STATUS_CODES[status].upper()}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *self.headers],
        )
        return [body]


class _Refused(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status, self.payload = _error(message, status)


def _error(message: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {"error": message, "status": status}


def init_app(app: Flask, headers: list[tuple[str, str]]) -> None:
    """The champion source, the routes, and POST /api/predict answered ahead of Flask (with `headers`)."""
    source = ChampionSource(
        app.config["DAG_ID"],
        app.config.get("MODEL_DIR"),
        app.config.get("PIPELINES"),
        float(app.config["PREDICT_REFRESH"]),
    )
    app.extensions[EXTENSION_KEY] = source
    endpoint = PredictEndpoint(
        source,
        headers,
        int(app.config.get("PREDICT_MAX_BYTES", MAX_BODY_BYTES)),
        int(app.config.get("PREDICT_MAX_ROWS", MAX_ROWS)),
    )
    app.extensions[ENDPOINT_KEY] = endpoint
    app.register_blueprint(bp)
    app.wsgi_app = _ahead_of_flask(app.wsgi_app, endpoint)  # type: ignore[method-assign]


def _ahead_of_flask(flask_wsgi: Any, endpoint: PredictEndpoint) -> Any:
    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == PREDICT_PATH and environ.get("REQUEST_METHOD") == "POST":
            return endpoint(environ, start_response)
        return flask_wsgi(environ, start_response)

    return wsgi_app


def _source() -> ChampionSource:
    return current_app.extensions[EXTENSION_KEY]


@bp.post(PREDICT_PATH)
def predict() -> Any:
    """The same answer through Flask, for a caller that reaches the view itself (the WSGI lane answers it first)."""
    status, payload = current_app.extensions[ENDPOINT_KEY].answer(request.environ)
    return jsonify(payload), status


def _versions() -> tuple[list[dict[str, Any]], str | None]:
    from adclick_ops.registry.commands import version_rows

    try:
        return version_rows(_source().registry()), None
    except Exception as exc:  # noqa: BLE001 - shown on the page instead of a 500
        return [], f"cannot read the model registry of {_source().dag_id}: {exc}"


@bp.get("/api/models")
def api_models() -> Any:
    rows, problem = _versions()
    if problem:
        return jsonify({"dag_id": _source().dag_id, "versions": [], "error": problem}), 503
    champion = next((r["version"] for r in rows if r["champion"]), None)
    return jsonify({"dag_id": _source().dag_id, "champion": champion, "versions": rows})


@bp.get("/models")
def models_page() -> Any:
    rows, problem = _versions()
    return render_template(
        "models.html",
        title="Model versions",
        dag_id=_source().dag_id,
        versions=list(reversed(rows)),
        problem=problem,
    )
