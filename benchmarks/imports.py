"""Item 3, explained: what importing the libraries of each task costs, in a fresh Python process.

A task process of a running Airflow re-parses its DAG file and then runs its callable; what either
imports is paid in every task process. Each line below is timed in its own new interpreter
(bytecode cached), best of several runs, and the libraries are imported in the same way as the
task callables of adclick_ops.tasks import them. Prints a table and writes
benchmarks/results/imports.json.

    .venv/bin/python benchmarks/imports.py [--runs 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, ROOT, bytecode, load, table, write  # noqa: E402

# (statement, who imports it)
IMPORTS = [
    ("import numpy", "separate_data_outputs_task (working files are .npz)"),
    ("import pandas", "load_data_task (read_csv)"),
    ("import sklearn", "nothing alone: the floor of every scikit-learn import"),
    ("import sklearn.model_selection, sklearn.preprocessing, sklearn.pipeline", "data_preprocessing_task (split, scalers)"),
    ("import sklearn.preprocessing, sklearn.pipeline, sklearn.linear_model", "the estimator's modules, without the metrics"),
    (
        "import sklearn.preprocessing, sklearn.pipeline, sklearn.linear_model, sklearn.metrics",
        "build_save_model_task (fit, then score the saved model and the champion)",
    ),
    ("import adclick_ops.steps.model", "our step module (all of the above that it needs)"),
    ("import onnxruntime", "scoring a model: build_save_model_task, the monitor, adclick-ops predict"),
    ("import onnx", "checking a model file before it is scored (the same processes)"),
    ("import skl2onnx", "converting the fitted pipeline: build_save_model_task only"),
    (
        "import adclick_ops.steps.model, onnx, onnxruntime, adclick_ops.registry.convert",
        "build_save_model_task in full (fit, convert, check, score)",
    ),
    ("import adclick_ops.registry, adclick_ops.artifacts", "load_model_task (decides from scores.json: no ONNX library)"),
    (
        "import numpy, pandas, sklearn.linear_model, sklearn.metrics, sklearn.model_selection, sklearn.preprocessing",
        "the seed replica's src/model_development.py, in each of its 7 task processes",
    ),
]
PROBE = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


def time_import(stmt: str, runs: int, env: dict[str, str]) -> list[float]:
    out = []
    for _ in range(runs):
        result = subprocess.run([PYTHON, "-c", PROBE.format(stmt=stmt)], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        if result.returncode != 0:
            raise SystemExit(f"`{stmt}` failed:\n{result.stderr[-2000:]}")
        out.append(float(result.stdout.strip().splitlines()[-1]))
    return out


def main(runs: int = 5) -> dict[str, Any]:
    import os

    env = bytecode({**os.environ, "PYTHONPATH": str(ROOT)}, cached=True)
    time_import(IMPORTS[-1][0], 1, env)  # writes the bytecode cache; not counted
    time_import(IMPORTS[-2][0], 1, env)
    rows, result = [], {"runs": runs, "load_before": load(), "imports": []}
    for stmt, who in IMPORTS:
        samples = time_import(stmt, runs, env)
        rows.append([stmt, who, f"{min(samples) * 1000:.0f}"])
        result["imports"].append(
            {"statement": stmt, "imported_by": who, "best_ms": min(samples) * 1000, "samples_ms": [s * 1000 for s in samples]}
        )
    print(f"\nImport cost in a fresh interpreter, bytecode cached, best of {runs} (load {load()})")
    print(table(["import", "who pays it", "best ms"], rows))
    print(f"-> {write('imports', result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    main(parser.parse_args().runs)
