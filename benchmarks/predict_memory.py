"""Wall time and peak memory of `adclick-ops predict` (predict_file) on CSV files of 100,000 and 1,000,000 rows.

A champion is trained on the shipped dataset into a temporary model folder (as benchmarks/predict_load.py
does); the input files are rows of the advertising dataset's shape, sampled from it with noise on the
income. Each run is its own process: the time is predict_file's, measured in that process; the peak
memory is the process's maximum resident set size (VmHWM, Linux), the imports and the loaded model
included. Works on this tree and on a copy of an earlier one (`--project COPY`, e.g. made with
`git archive HEAD adclick_ops | tar -x -C COPY`), so that both are measured side by side on the same machine.

    .venv/bin/python benchmarks/predict_memory.py [--rows 100000 1000000] [--runs 3] [--project COPY]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from predict_load import FEATURES, train_champion  # noqa: E402

CHILD = """
import json, sys, time
from adclick_ops.predict import predict_file
from adclick_ops.registry.registry import Registry

registry = Registry(sys.argv[1], "Airflow_Lab2")
started = time.perf_counter()
_, rows = predict_file(registry, sys.argv[2], sys.argv[3])
seconds = time.perf_counter() - started
# the peak of this process's own memory since its exec (ru_maxrss would count the parent's at fork time)
with open("/proc/self/status") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"rows": rows, "seconds": seconds, "peak_kb": peak_kb}))
"""


def make_input(path: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    seed = pd.read_csv(ROOT / "dags" / "data" / "advertising.csv")[FEATURES]
    rng = np.random.default_rng(0)
    frame = seed.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    frame["Area Income"] = (frame["Area Income"] + rng.normal(0, 1000, rows)).round(2)
    frame.to_csv(path, index=False)


def run_once(project: Path, model_dir: Path, source: Path, target: Path) -> dict[str, float]:
    """One predict_file in a process of its own: its seconds and its peak RSS in MB."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    child = subprocess.Popen(  # run from the model's folder: `-c` puts the working folder first on sys.path
        [sys.executable, "-c", CHILD, str(model_dir), str(source), str(target)], env=env, stdout=subprocess.PIPE, cwd=model_dir
    )
    out = child.stdout.read() if child.stdout else b""
    if child.wait() != 0:
        raise SystemExit(f"predict_file failed in {project} on {source} (exit {child.returncode})")
    said = json.loads(out)
    return {"seconds": said["seconds"], "peak_rss_mb": said["peak_kb"] / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--project", action="append", default=[], help="another copy of the project to measure as well")
    args = parser.parse_args()
    projects = [ROOT, *(Path(p).resolve() for p in args.project)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_champion(work / "model", work / "runs")
        for rows in args.rows:
            source = work / f"in-{rows}.csv"
            make_input(source, rows)
            outputs = []
            for project in projects:
                target = work / f"out-{rows}-{len(outputs)}.csv"
                runs = [run_once(project, work / "model", source, target) for _ in range(args.runs)]
                outputs.append(target.read_bytes())
                best = min(r["seconds"] for r in runs)
                peak = max(r["peak_rss_mb"] for r in runs)
                results.append(
                    {"project": str(project), "rows": rows, "best_s": best, "runs_s": [r["seconds"] for r in runs], "peak_rss_mb": peak}
                )
                print(f"{rows:>9,} rows  {project}: best {best:.3f} s of {[round(r['seconds'], 3) for r in runs]}, peak RSS {peak:.0f} MB")
            if len(set(outputs)) > 1:
                print(f"{rows:>9,} rows: the outputs differ between the projects", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
