"""`adclick-ops monitor` as an ASGI application, served by gunicorn's uvicorn workers.

Each worker runs one event loop (uvloop) with a C HTTP parser (httptools). A single-row
POST /api/predict is read, scored and answered on that loop: no thread hand-off, no Flask request
context. Everything else goes to the Flask application on a pool of threads (`FlaskLane`), where a page
may wait on Airflow without holding up the loop. The server's own answers (a request it cannot parse,
too large a head, too slow a client) carry the monitor's security headers, as every page does.
"""

from __future__ import annotations

import asyncio
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi.wsgi import build_environ
from flask import Flask
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from adclick_ops.monitor.predict import ENDPOINT_KEY, PREDICT_PATH, ChampionStale, PredictEndpoint

log = logging.getLogger(__name__)

# Limits of a request's head, as gunicorn's defaults give them (limit_request_line, limit_request_fields),
# with one bound on the head as a whole in place of a bound per field.
MAX_URL_BYTES = 4094
MAX_HEADER_FIELDS = 100
MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT = 10.0  # seconds from a connection (or the first byte of a request) to the end of its head
BODY_TIMEOUT = 30.0  # seconds from the end of a head to the end of its body (4 MiB at about 1 Mbit/s)
# A kept-alive connection stays with the worker that accepted it, so each one is closed (announced with
# `Connection: close`) after this many requests: the client's next connection goes to whichever worker
# accepts first, and no worker keeps most clients for long.
REQUESTS_PER_CONNECTION = 100
# A body up to this size is scored on the event loop (one row is about 150 bytes, a hundred rows 15 KB);
# larger ones, and any request that must look at the registry first, are answered on a thread.
INLINE_BODY_BYTES = 16 * 1024
PREDICT_THREADS = 2
# No route but /api/predict reads a body; a page request's body is read (for Flask) up to this size.
PAGE_BODY_BYTES = 64 * 1024


class _HeadRefused(Exception):
    """Raised in a parser callback: the parser stops, and the connection is answered and closed."""


class MonitorHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounds on the head, deadlines for the head and the body, and a
    number of requests per connection. Its error answers carry the server's default headers (the security headers)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requests = 0
        self._in_head = True
        self._head_bytes = 0
        self._url_bytes = 0
        self._fields = 0
        self._refusal: tuple[int, str] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the deadline of the head, then of the body

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Counted once parsed: a chunk that ends a head (on_headers_complete) is not counted, so a head
        # is bounded to MAX_HEAD_BYTES and the one chunk the loop read beyond it.
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._send_error(431, f"request head longer than {MAX_HEAD_BYTES:,} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._url_bytes, self._fields = True, 0, 0, 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > MAX_URL_BYTES:
            self._refusal = (414, f"request target longer than {MAX_URL_BYTES:,} bytes")
            raise _HeadRefused
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_HEADER_FIELDS:
            self._refusal = (431, f"more than {MAX_HEADER_FIELDS} header fields")
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_timer()
        super().on_headers_complete()
        self._requests += 1
        if self._requests >= REQUESTS_PER_CONNECTION and self.cycle is not None:
            self.cycle.keep_alive = False  # this answer says `Connection: close`, and the connection ends after it
        self._timer = self.loop.call_later(BODY_TIMEOUT, self._timed_out)  # until on_message_complete

    def on_message_complete(self) -> None:
        self._cancel_timer()
        super().on_message_complete()

    def _unsupported_upgrade_warning(self) -> None:
        # uvicorn's own text advises installing a WebSocket library; the monitor has no WebSocket route
        self.logger.warning("refused a request to upgrade the connection (the monitor speaks HTTP/1.1 only)")

    def send_400_response(self, msg: str) -> None:
        status, message = self._refusal or (400, "invalid HTTP request")
        self._send_error(status, message)

    def _send_error(self, status: int, message: str) -> None:
        self._cancel_timer()
        body = message.encode("ascii", "replace") + b"\n"
        head = [STATUS_LINE[status]]
        head.extend(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        head.append(b"content-type: text/plain; charset=utf-8\r\ncache-control: no-store\r\nconnection: close\r\n")
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _arm_head_timer(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(HEAD_TIMEOUT, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if not self._in_head:
            self._send_error(408, f"request body not received within {BODY_TIMEOUT:g} s")
        elif self._head_bytes == 0 and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()  # nothing asked: nothing to answer
        else:
            self._send_error(408, f"request head not received within {HEAD_TIMEOUT:g} s")


class MonitorASGI:
    """POST /api/predict answered on the event loop; every other request handed to Flask on `threads` threads."""

    def __init__(self, app: Flask, threads: int, default_headers: list[tuple[str, str]]):
        self.endpoint: PredictEndpoint = app.extensions[ENDPOINT_KEY]
        self.flask = FlaskLane(app, threads, {name.lower() for name, _ in default_headers})
        self._predict_pool = ThreadPoolExecutor(PREDICT_THREADS, thread_name_prefix="adclick-predict")
        self._predict_headers = [(b"content-type", b"application/json")] + [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.endpoint.headers
            if name.lower() not in self.flask.server_headers
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == PREDICT_PATH and scope["method"] == "POST":
            await self._predict(scope, receive, send)
        else:
            await self.flask(scope, receive, send)

    async def _predict(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        endpoint = self.endpoint
        try:
            refused = endpoint.refuse_length(_content_length(scope))
            if refused is not None:
                await self._answer(send, *refused, close=True)
                return
            raw = await _read_body(receive, endpoint.max_bytes)
            if raw is None:
                return  # the client went away
            if len(raw) > endpoint.max_bytes:
                await self._answer(send, *endpoint.too_long(), close=True)
                return
            status, payload = await self._score(raw)
        except Exception:  # noqa: BLE001 - as the app's handler of unexpected errors: logged in full, one line answered
            log.exception("monitor error on %s", PREDICT_PATH)
            status, payload = 500, {"error": "internal error of the monitor", "status": 500}
        await self._answer(send, status, payload)

    async def _score(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        """On the loop when the body is small and the champion known; on a thread otherwise."""
        if len(raw) <= INLINE_BODY_BYTES:
            try:
                return self.endpoint.answer_body(raw, from_memory=True)
            except ChampionStale:
                pass  # the pointer is due for a look: storage I/O, never on the loop
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._predict_pool, self.endpoint.answer_body, raw)

    async def _answer(self, send: Any, status: int, payload: dict[str, Any], close: bool = False) -> None:
        headers = list(self._predict_headers)
        if close:  # the rest of the body is not read: the connection cannot carry another request
            headers.append((b"connection", b"close"))
        await _send_whole(send, status, headers, PredictEndpoint.encode(payload))


class FlaskLane:
    """The Flask application on a pool of threads: one hand-off per request, the answer sent whole.

    The body (at most PAGE_BODY_BYTES) is read first, so the thread never waits on the client; the
    answer (a page, a JSON document, a small static file) is collected in the thread and sent by the
    loop. The WSGI environ is a2wsgi's. Headers the server writes itself are left out of Flask's.
    """

    def __init__(self, app: Flask, threads: int, server_headers: set[str]):
        self.app = app
        self.server_headers = frozenset(server_headers)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="adclick-flask")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        declared = _content_length(scope)
        if (declared or 0) > PAGE_BODY_BYTES:
            await self._too_large(send)  # refused before any of it is read
            return
        raw = b"" if declared == 0 else await _read_body(receive, PAGE_BODY_BYTES)
        if raw is None:
            return  # the client went away
        if len(raw) > PAGE_BODY_BYTES:
            await self._too_large(send)
            return
        environ = build_environ(scope, io.BytesIO(raw))  # type: ignore[arg-type]
        status, headers, body = await asyncio.get_running_loop().run_in_executor(self._pool, self._run, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})  # Flask's own length
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _too_large(send: Any) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store"), (b"connection", b"close")]
        await _send_whole(send, 413, headers, f"request body longer than {PAGE_BODY_BYTES:,} bytes\n".encode())

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        answer: dict[str, Any] = {}
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer["status"], answer["headers"] = status, headers
            return chunks.append

        iterable = self.app(environ, start_response)
        try:
            chunks.extend(iterable)
        finally:
            getattr(iterable, "close", lambda: None)()
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in answer["headers"]
            if name.lower() not in self.server_headers
        ]
        return int(answer["status"].split(" ", 1)[0]), headers, b"".join(chunks)


async def _send_whole(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """An answer of the monitor's own, its length declared."""
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    """The declared body length (the parser has already refused a malformed or repeated one); None when chunked."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # read within the bound, as a chunked body is
    return None


async def _read_body(receive: Any, limit: int) -> bytes | None:
    """The body, or its first limit+1 bytes when longer; None when the client disconnects first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit or not message.get("more_body", False):
            return b"".join(chunks)
