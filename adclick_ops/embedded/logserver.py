"""Airflow's task-log server on one interface, loopback by default.

`airflow scheduler` and `airflow triggerer` start a log server (serve-logs) of their own, always on
every interface (airflow.utils.serve_logs binds host ""). The embedded stack starts them with
--skip-serve-logs and runs the same application here, bound to $ADCLICK_OPS_LOG_SERVER_HOST
(127.0.0.1 unless the user sets another), on Airflow's configured ports.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

ENV_HOST = "ADCLICK_OPS_LOG_SERVER_HOST"
DEFAULT_HOST = "127.0.0.1"


def host() -> str:
    return os.environ.get(ENV_HOST) or DEFAULT_HOST


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return name == "localhost"


def hostname() -> str:
    """[core] hostname_callable of the embedded stack: where the api-server fetches a running task's log.

    With the log server on loopback, the machine's own name may resolve to an address it does not
    listen on; the loopback address is where it does.
    """
    name = host()
    return name if _is_loopback(name) else socket.getfqdn()


def main(argv: list[str]) -> int:
    import uvicorn
    from airflow.configuration import conf

    port = int(argv[0]) if argv else conf.getint("logging", "worker_log_server_port")
    uvicorn.run(
        "airflow.utils.serve_logs.log_server:get_app",
        factory=True,
        host=host(),
        port=port,
        log_level=conf.get("logging", "uvicorn_logging_level", fallback="info").lower(),
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
