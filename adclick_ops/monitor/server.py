"""Serving the monitor: gunicorn with uvicorn workers when standalone (`adclick-ops monitor`), waitress inside start_Flask_API.

`MonitorServer` owns the waitress loop so that it can stop after `serve_for` seconds, or when
asked, and always release its port and threads. Whether to serve at all is `ensure`'s decision.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from flask import Flask
from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from adclick_ops.config.vocabulary import MONITOR_HOST, MONITOR_PORT
from adclick_ops.monitor.app import SECURITY_HEADERS, create_app
from adclick_ops.monitor.predict import MAX_BODY_BYTES
from adclick_ops.monitor.views import SERVICE_NAME
from adclick_ops.net import bind_error

log = logging.getLogger(__name__)

_WILDCARDS = {"", "0.0.0.0", "::", "*"}
GUNICORN_THREADS = 4  # per worker, for Flask's pages; /api/predict is answered on the worker's event loop
WAITRESS_THREADS = 8
# Keep-alive saves a TCP connection per request; each connection is closed after
# asgi.REQUESTS_PER_CONNECTION requests, so that no worker keeps most clients for long.
KEEPALIVE_SECONDS = 2
CONNECTIONS_PER_WORKER = 1000  # beyond this, a worker answers 503 at once (gunicorn's worker_connections)
_POLL_SECONDS = 0.25  # how soon a stop request or the end of serve_for is noticed when idle

# What waitress (start_Flask_API) allows a client. A request is read by waitress's loop, not by a thread: a thread
# takes it only once it has arrived whole, so slow clients hold connections, never threads; these bound how many
# and for how long (the same bounds as `adclick-ops monitor`'s workers, docs/monitor.md).
WAITRESS_CONNECTIONS = 256  # beyond this, new connections wait in the listen backlog until one ends
HEAD_SECONDS = 10.0  # from the first byte of a request to the end of its head, else 408 and the connection closed
BODY_SECONDS = 30.0  # from the end of a head to the end of its body (4 MiB at about 1 Mbit/s), else 408
IDLE_SECONDS = 10  # a connection that sends nothing (before a request, or kept alive after one) is closed
CLEANUP_SECONDS = 1  # how often idle connections and the deadlines above are looked at
MAX_HEAD_BYTES = 64 * 1024  # else 431
MAX_BODY_SIZE = 2 * MAX_BODY_BYTES  # larger bodies are refused (413) before they are read; /api/predict says its own


# Routes that answer without Airflow: waitress serves them on threads of their own, so that they
# answer even while every other thread waits on a slow Airflow.
FAST_PATHS = frozenset({"/health", "/favicon.ico"})
_ERROR_HEADERS = [*SECURITY_HEADERS.items(), ("Cache-Control", "no-store")]
# Written by uvicorn on every answer of `adclick-ops monitor`, its own error answers included.
SERVER_HEADERS = [("Server", SERVICE_NAME), *SECURITY_HEADERS.items()]


class MonitorPortError(RuntimeError):
    """The monitor cannot have its port: another program holds it, or binding failed."""


class _SecureErrorTask(ErrorTask):
    """waitress's own error answers (bad request line, headers too large, ...) with the monitor's headers."""

    def execute(self) -> None:
        self.response_headers.extend(_ERROR_HEADERS)
        super().execute()


class _Channel(HTTPChannel):
    """waitress's connection, with HEAD_SECONDS and BODY_SECONDS: a client that sends its request a byte at a
    time keeps the connection alive (waitress's idle timeout never fires) but not beyond these."""

    error_task_class = _SecureErrorTask
    # the request being received, whether its head has ended, and since when (time.monotonic()) it is in that part
    _part: tuple[Any, bool, float] | None = None

    def received(self, data: bytes) -> bool:
        result = super().received(data)
        request = self.request
        if request is None:
            self._part = None
        elif self._part is None or self._part[0] is not request or self._part[1] != request.headers_finished:
            self._part = (request, bool(request.headers_finished), time.monotonic())
        self.enforce_deadline(time.monotonic())
        return result

    def enforce_deadline(self, now: float) -> None:
        """Answer 408 and close when the request being received has taken too long (not while one is served)."""
        if self._part is None or self.requests or self.will_close or self.close_when_flushed:
            return
        _, in_body, since = self._part
        limit, part = (BODY_SECONDS, "body") if in_body else (HEAD_SECONDS, "head")
        if now - since > limit:
            self._refuse(f"request {part} not received within {limit:g} s")

    def _refuse(self, message: str) -> None:
        body = (message + "\n").encode("ascii", "replace")
        fields = [("Server", SERVICE_NAME), *_ERROR_HEADERS, ("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")]
        head = "".join(f"{name}: {value}\r\n" for name, value in [*fields, ("Content-Length", str(len(body)))])
        payload = f"HTTP/1.1 408 Request Timeout\r\n{head}\r\n".encode("latin-1") + body
        with self.outbuf_lock:
            self.outbufs[-1].append(payload)
            self.current_outbuf_count += len(payload)
            self.total_outbufs_len += len(payload)
        self.request = self._part = None
        self.close_when_flushed = True  # the loop sends the answer, then closes


def _with_deadlines(server: Any) -> None:
    """waitress's periodic look at its connections also ends the requests past HEAD_SECONDS or BODY_SECONDS
    (a client that sent part of a request, then nothing)."""
    idle = server.maintenance

    def maintenance(now: float) -> None:
        moment = time.monotonic()
        for channel in list(server.active_channels.values()):
            if isinstance(channel, _Channel):
                channel.enforce_deadline(moment)
        idle(now)

    server.maintenance = maintenance


class _LaneDispatcher(ThreadedTaskDispatcher):
    """Hands channels whose next request is a FAST_PATHS route to `fast`, the others to its own threads."""

    def __init__(self, fast: ThreadedTaskDispatcher):
        super().__init__()
        self.fast = fast

    def add_task(self, task: Any) -> None:
        requests = getattr(task, "requests", None)
        if requests and getattr(requests[0], "path", None) in FAST_PATHS and not getattr(requests[0], "error", None):
            self.fast.add_task(task)
        else:
            super().add_task(task)

    def shutdown(self, cancel_pending: bool = True, timeout: int = 5) -> bool:
        self.fast.shutdown(cancel_pending, timeout)
        return super().shutdown(cancel_pending, timeout)


def url_host(host: str, *, connect: bool) -> str:
    if host in _WILDCARDS:
        host = "127.0.0.1" if connect else "localhost"
    return f"[{host}]" if ":" in host else host


def monitor_url(host: str, port: int) -> str:
    """The address people open; a wildcard host is shown as localhost."""
    return f"http://{url_host(host, connect=False)}:{port}"


class MonitorServer:
    """A waitress server bound at construction (so a busy port fails at once), served by `run`."""

    def __init__(self, app: Flask, host: str = MONITOR_HOST, port: int = MONITOR_PORT, *, threads: int = WAITRESS_THREADS):
        self._map: dict[Any, Any] = {}
        fast = ThreadedTaskDispatcher()
        fast.set_thread_count(2)
        self._dispatcher = _LaneDispatcher(fast)
        self._dispatcher.set_thread_count(threads)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._server = create_server(
                app,
                map=self._map,
                _dispatcher=self._dispatcher,
                host=host,
                port=port,
                threads=threads,
                ident=SERVICE_NAME,
                expose_tracebacks=False,
                clear_untrusted_proxy_headers=True,
                connection_limit=WAITRESS_CONNECTIONS,
                channel_timeout=IDLE_SECONDS,
                cleanup_interval=CLEANUP_SECONDS,
                max_request_header_size=MAX_HEAD_BYTES,
                max_request_body_size=MAX_BODY_SIZE,
            )
        except OSError as exc:
            self._close()
            raise MonitorPortError(f"the monitor cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        for server in [self._server, *self._map.values()]:
            if hasattr(server, "channel_class"):
                server.channel_class = _Channel
                _with_deadlines(server)
        listen = getattr(self._server, "effective_listen", None)
        self.port = int(listen[0][1] if listen else self._server.effective_port)
        self.host = host
        self.url = monitor_url(host, self.port)

    def run(self, duration: float | None = None) -> None:
        """Serve until `stop()`, until `duration` seconds have passed (None: no limit), or an exception."""
        deadline = None if duration is None else time.monotonic() + duration
        loop = self._server.asyncore.loop
        try:
            while not self._stop.is_set():
                timeout = _POLL_SECONDS
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    timeout = min(timeout, left)
                loop(timeout=timeout, map=self._map, use_poll=True, count=1)
        finally:
            self._close()

    def start(self) -> MonitorServer:
        """Serve in a daemon thread (tests, benchmarks); `stop()` ends it."""
        self._thread = threading.Thread(target=self.run, name=f"adclick-monitor:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> MonitorServer:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def _close(self) -> None:
        self._dispatcher.shutdown(cancel_pending=True, timeout=5)
        for dispatcher in list(self._map.values()):
            try:
                dispatcher.close()
            except OSError:
                pass
        self._map.clear()


def _port_is_free(host: str, port: int) -> None:
    # gunicorn would retry a busy port five times and exit; check first and say so plainly.
    exc = bind_error(port, host)
    if exc is not None:
        raise MonitorPortError(f"the monitor cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def uvicorn_settings() -> dict[str, Any]:
    """What each uvicorn worker of `adclick-ops monitor` runs with (beside gunicorn's own settings)."""
    from adclick_ops.monitor.asgi import MonitorHttpProtocol

    return {
        "loop": "uvloop",
        "http": MonitorHttpProtocol,
        "ws": "none",
        "lifespan": "off",
        "interface": "asgi3",
        "proxy_headers": False,  # the monitor's addresses are the peers', whatever a header claims
        "server_header": False,
        "headers": SERVER_HEADERS,
        "limit_concurrency": CONNECTIONS_PER_WORKER,
        "access_log": False,
    }


def _uvicorn_worker() -> type:
    from uvicorn_worker import UvicornWorker

    class MonitorWorker(UvicornWorker):
        CONFIG_KWARGS = uvicorn_settings()

        def init_signals(self) -> None:
            super().init_signals()
            # uvicorn shuts down gracefully on SIGTERM or SIGINT, then raises the signal again for the handler
            # it found: exit 0 there, so that gunicorn sees a clean exit rather than a worker killed by a signal.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, _exit_cleanly)

    return MonitorWorker


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _serve_gunicorn(config: dict[str, Any], host: str, port: int, workers: int, threads: int) -> None:
    """Pre-forked workers (every core, unlike one GIL), each an event loop for /api/predict and `threads`
    threads for Flask. At most half of those threads wait on Airflow at once (MAX_WAITERS): the others are
    always free for /health and for pages answered from the cache, however slow Airflow is."""
    from gunicorn.app.base import BaseApplication

    from adclick_ops.monitor.asgi import MonitorASGI

    worker_class = _uvicorn_worker()
    config = {**config, "MAX_WAITERS": max(1, threads // 2)}

    class _Monitor(BaseApplication):
        def load_config(self) -> None:
            settings = {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                "worker_class": worker_class,
                "keepalive": KEEPALIVE_SECONDS,
                "timeout": 30,  # far above what a request may wait on Airflow (2 s)
                "graceful_timeout": 5,
                "proc_name": SERVICE_NAME,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "info",
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            app = create_app(config)
            # Start reading the latest run now, so that the first requests find it.
            source = app.extensions["adclick_monitor"]
            threading.Thread(target=source.status, name="adclick-monitor-warmup", daemon=True).start()
            return MonitorASGI(app, threads, SERVER_HEADERS)

    _Monitor().run()


def serve(
    host: str = MONITOR_HOST,
    port: int = MONITOR_PORT,
    airflow_url: str | None = None,
    dag_id: str | None = None,
    *,
    server: str = "gunicorn",
    workers: int = 2,
    threads: int | None = None,
    serve_for: float | None = None,
    cache_ttl: float | None = None,
) -> str:
    """Serve the monitor on host:port until interrupted (or for `serve_for` seconds, waitress only).

    server="gunicorn" (standalone, `adclick-ops monitor`): `workers` pre-forked uvicorn workers, each with
    `threads` threads for Flask (GUNICORN_THREADS when None); /api/predict is answered on their event loops.
    server="waitress" (inside start_Flask_API): one process, `threads` threads, no fork.
    `airflow_url`, `dag_id` and `cache_ttl` left to None come from the environment or the defaults
    (see adclick_ops.monitor.app). Raises MonitorPortError when the port cannot be had.
    Returns the monitor's URL once serving has ended.
    """
    if server not in ("gunicorn", "waitress"):
        raise ValueError(f"server must be 'gunicorn' or 'waitress', got {server!r}")
    if server == "gunicorn" and serve_for is not None:
        raise ValueError("serve_for needs server='waitress' (gunicorn serves until it is stopped)")
    config = {"AIRFLOW_URL": airflow_url, "DAG_ID": dag_id, "CACHE_TTL": cache_ttl}
    app = create_app(config)
    url = monitor_url(host, port)
    described = f"(Airflow API {app.config['AIRFLOW_URL']}, DAG {app.config['DAG_ID']}, cache {app.config['CACHE_TTL']:g} s)"
    if server == "gunicorn":
        _port_is_free(host, port)
        log.info("adclick monitor serving at %s with gunicorn, %d workers %s", url, workers, described)
        _serve_gunicorn(config, host, port, workers, threads or GUNICORN_THREADS)
        return url
    waitress_server = MonitorServer(app, host, port, threads=threads or WAITRESS_THREADS)
    log.info(
        "adclick monitor serving at %s with waitress %s%s",
        waitress_server.url,
        described,
        f" for {serve_for:g} s" if serve_for is not None else "",
    )
    try:
        waitress_server.run(serve_for)
    except KeyboardInterrupt:
        log.info("adclick monitor at %s stopped", waitress_server.url)
    return waitress_server.url
