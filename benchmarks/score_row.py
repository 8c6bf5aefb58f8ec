"""The cost of one prediction in-process, without the network: scoring one row with the champion, one
POST /api/predict through Flask's test client, and the CPU time of one POST /api/predict through the
monitor's WSGI application called directly, as a server calls it (time.process_time over `--wsgi-calls`
requests, best of 3: what the server spends in the application, and the figure that moves least when
other work shares the machine). Works on this tree and on a copy of an earlier one (PYTHONPATH=COPY),
so that both are measured side by side on the same machine.
Prints a table and writes benchmarks/results/score_row.json.

    .venv/bin/python benchmarks/score_row.py [--calls 2000] [--wsgi-calls 20000]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from predict_load import FEATURES, train_champion  # noqa: E402

from _common import load, write  # noqa: E402


def best_us(call, calls: int) -> float:
    """The best of 5 rounds of `calls` calls, per call, in microseconds."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        rounds.append((time.perf_counter() - started) / calls * 1e6)
    return min(rounds)


def wsgi_cpu_us(app, body: bytes, calls: int) -> float:
    """CPU time (process_time) per POST /api/predict through `app` as a WSGI server calls it, best of 3, in µs."""
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/predict",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5555",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:5555",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    status = []

    def start_response(line, headers, exc_info=None):
        status.append(line)

    def call() -> None:
        answer = app({**base, "wsgi.input": io.BytesIO(body)}, start_response)
        b"".join(answer)
        if hasattr(answer, "close"):
            answer.close()

    call()
    assert status == ["200 OK"], status
    rounds = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(calls):
            call()
        rounds.append((time.process_time() - started) / calls * 1e6)
    return min(rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--wsgi-calls", type=int, default=20_000)
    args = parser.parse_args()
    import pandas as pd

    from adclick_ops.config.vocabulary import ENV_MODEL_DIR
    from adclick_ops.monitor import create_app
    from adclick_ops.predict import load_champion, rows_to_matrix, score

    row = pd.read_csv(ROOT / "dags" / "data" / "advertising.csv")[FEATURES].head(1).to_dict("records")[0]
    with tempfile.TemporaryDirectory() as tmp:
        registry = train_champion(Path(tmp) / "model", Path(tmp) / "runs")
        champion = load_champion(registry)
        x = rows_to_matrix([row], tuple(FEATURES))
        scoring = best_us(lambda: score(champion.model, x), args.calls)
        import os

        os.environ[ENV_MODEL_DIR] = str(Path(tmp) / "model")
        app = create_app({"TESTING": True, "AIRFLOW_URL": "http://127.0.0.1:9", "MODEL_DIR": str(Path(tmp) / "model")})
        client = app.test_client()
        body = json.dumps({"rows": [row]})
        first = client.post("/api/predict", data=body, headers={"Content-Type": "application/json"})
        assert first.status_code == 200, first.get_data(as_text=True)
        request = best_us(lambda: client.post("/api/predict", data=body, headers={"Content-Type": "application/json"}), args.calls // 4)
        wsgi = wsgi_cpu_us(app, body.encode(), args.wsgi_calls)
        kind = type(champion.model).__name__
    print(f"\nOne row, in-process, best of 5 rounds (load {load()}); the champion is a {kind}")
    print(f"| score one row | {scoring:8.1f} µs |")
    print(f"| POST /api/predict (test client) | {request:8.1f} µs |")
    print(f"| POST /api/predict, CPU in the WSGI application | {wsgi:8.1f} µs |")
    write(
        "score_row",
        {
            "model": kind,
            "score_one_row_us": scoring,
            "post_predict_us": request,
            "wsgi_cpu_us": wsgi,
            "calls": args.calls,
            "wsgi_calls": args.wsgi_calls,
            "load_average": load(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
