"""POST /api/predict: click probabilities from the champion of the monitored DAG; /models and /api/models: its versions.

The champion is read from the model registry and cached; the pointer is checked again at most every
PREDICT_REFRESH seconds, so a new champion (a run, a promote, a rollback) serves within seconds
without a restart. Reading the pointer is a stat() on a local folder, one HEAD on S3.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template, request

from adclick_ops import jsonio
from adclick_ops.predict import (
    MAX_ROWS,
    Champion,
    PredictInputError,
    load_champion,
    predictions_json,
    rows_to_matrix,
    score,
)
from adclick_ops.registry.serialization import UnsafeModelError

log = logging.getLogger(__name__)

bp = Blueprint("predict", __name__)
EXTENSION_KEY = "adclick_models"
REQUEST_MAX_DEPTH = 16  # {"rows": [{feature: value}]} is 3 deep
MAX_BODY_BYTES = 4 * 1024 * 1024  # 10,000 rows of five features take about 1.3 MB


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

    def champion(self) -> tuple[Champion | None, str | None]:
        """The champion to serve (None with the reason when there is none)."""
        if time.monotonic() - self._checked < self.refresh:
            return self._champion, self._problem
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


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = ChampionSource(
        app.config["DAG_ID"],
        app.config.get("MODEL_DIR"),
        app.config.get("PIPELINES"),
        float(app.config["PREDICT_REFRESH"]),
    )
    app.register_blueprint(bp)


def _source() -> ChampionSource:
    return current_app.extensions[EXTENSION_KEY]


def _bad(message: str, status: int = 400) -> tuple[Any, int]:
    return jsonify({"error": message, "status": status}), status


@bp.post("/api/predict")
def predict() -> Any:
    limit = int(current_app.config.get("PREDICT_MAX_BYTES", MAX_BODY_BYTES))
    if request.content_length is not None and request.content_length > limit:
        return _bad(f"request body: {request.content_length:,} bytes; at most {limit:,} bytes per request")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        return _bad(f"request body: more than {limit:,} bytes; at most {limit:,} bytes per request")
    try:
        # NaN, Infinity and 1e400 pass here: rows_to_matrix refuses them naming the row and the field
        body = jsonio.loads(raw, max_bytes=limit, max_depth=REQUEST_MAX_DEPTH, strict_numbers=False)
    except ValueError as exc:
        return _bad(f"request body: {exc}")
    if not isinstance(body, dict) or "rows" not in body:
        return _bad('request body: expected {"rows": [{feature: value, ...}, ...]}')
    extra = sorted(k for k in body if k != "rows")
    if extra:
        return _bad(f"request body: unknown field(s) {', '.join(map(repr, extra))}; expected only 'rows'")
    champion, problem = _source().champion()
    if champion is None:
        return _bad(problem or "no champion", 503)
    try:
        x = rows_to_matrix(
            body["rows"],
            champion.features,
            int(current_app.config.get("PREDICT_MAX_ROWS", MAX_ROWS)),
        )
    except PredictInputError as exc:
        return _bad(str(exc))
    try:
        probability, clicked = score(champion.model, x)
    except UnsafeModelError as exc:  # a graph that loaded but cannot score these rows: the model's fault, not the client's
        log.error("version %s of %s cannot score: %s", champion.version, champion.dag_id, exc)
        return _bad(f"version {champion.version} of {champion.dag_id} cannot score these rows: {exc}", 503)
    return jsonify(
        {
            "dag_id": champion.dag_id,
            "model_version": champion.version,
            "predictions": predictions_json(probability, clicked),
        }
    )


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
