"""Item 5: data scale. `airflow dags test Airflow_Lab2` on 100k, 1M and 5M rows against a plain script.

The datasets are made here by resampling the shipped advertising.csv with small noise (never
committed; they live in a temporary folder). For each size, ours is one `airflow dags test` of a copy
of pipelines/ whose dataset is that file, and the plain script (`--plain FILE`) does the same steps
with pandas and scikit-learn in one process: read the CSV, the same 70/30 split, the same scalers and
LogisticRegression, the same metrics. Wall time and peak RSS of the whole process tree (sampled every
50 ms with psutil) for both. The 1k-row run of ours is Airflow's fixed cost; the targets compare what
ours costs above it with the plain script:

    (ours(N) - ours(1k)) <= 2 x plain(N), for the wall time and for the peak RSS.

    .venv/bin/python benchmarks/data_scale.py [--sizes 100000,1000000,5000000] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import PYTHON, ROOT, airflow_env, bytecode, load, table, verdict, write  # noqa: E402

TARGET = 2.0
DATASET = ROOT / "dags" / "data" / "advertising.csv"
FEATURES = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]
TARGET_COLUMN = "Clicked on Ad"


def make_dataset(rows: int, path: Path, seed: int = 7) -> Path:
    """`rows` rows drawn with replacement from the shipped data, numeric features jittered by 1 % of their spread."""
    import numpy as np
    import pandas as pd

    source = pd.read_csv(DATASET)
    rng = np.random.default_rng(seed)
    frame = source.iloc[rng.integers(0, len(source), rows)].reset_index(drop=True)
    for column in ("Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage"):
        frame[column] = (frame[column] + rng.normal(0, 0.01 * source[column].std(), rows)).round(2)
    frame.to_csv(path, index=False)
    return path


def plain(path: str) -> None:
    """The same steps as Airflow_Lab2's training tasks, in one process, as a user would script them."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    frame = pd.read_csv(path)
    x, y = frame[FEATURES].to_numpy("float64"), frame[TARGET_COLUMN].to_numpy("int64")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=42)
    model = Pipeline(
        [
            ("preprocess", FeatureUnion([("minmax", MinMaxScaler()), ("standard", StandardScaler())])),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(x_train, y_train)
    predicted, scores = model.predict(x_test), model.predict_proba(x_test)[:, 1]
    print(
        {
            "accuracy": accuracy_score(y_test, predicted),
            "precision": precision_score(y_test, predicted),
            "recall": recall_score(y_test, predicted),
            "f1": f1_score(y_test, predicted),
            "roc_auc": roc_auc_score(y_test, scores),
        }
    )


def measure(argv: list[str], env: dict[str, str] | None, log: Path) -> tuple[float, float]:
    """Wall time (s) and peak RSS of the process tree (MiB) of one command; it must exit 0."""
    import psutil

    peak = 0
    done = threading.Event()
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

        def sample() -> None:
            nonlocal peak
            root = psutil.Process(proc.pid)
            while not done.is_set():
                try:
                    tree = [root, *root.children(recursive=True)]
                    total = 0
                    for p in tree:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                    peak = max(peak, total)
                except psutil.Error:
                    pass
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed (exit {code}); see {log}")
    return elapsed, peak / 2**20


def main(sizes: list[int], keep: str | None = None) -> dict[str, Any]:
    from end_to_end import migrate, our_pipelines

    from adclick_ops.embedded.mailsink import MailSink
    from adclick_ops.net import free_port

    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="adclick-data-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    try:
        with MailSink(work / "mail") as sink:
            pipelines = our_pipelines(work / "ours", free_port())
            lab = pipelines / "airflow_lab2.yaml"
            template = lab.read_text()
            home = work / "home"
            env = bytecode(
                # the work folder is this run's project root: a dataset must lie inside the project
                airflow_env(
                    home,
                    _common.OUR_DAGS,
                    {**sink.connection_env(), "ADCLICK_OPS_PIPELINES": str(pipelines), "ADCLICK_OPS_HOME": str(work)},
                ),
                cached=True,
            )
            migrate(env, home)
            airflow_bin = shutil.which("airflow", path=env["PATH"]) or "airflow"
            lab.write_text(template.replace(str(DATASET), str(shutil.copy(DATASET, work / "advertising-1000.csv"))))
            measure([airflow_bin, "dags", "test", "Airflow_Lab2"], env, work / "warm-up.log")  # first imports, caches: not counted
            for rows in [1000, *sizes]:
                data = work / f"advertising-{rows}.csv"
                if rows != 1000:
                    make_dataset(rows, data)
                lab.write_text(template.replace(str(DATASET), str(data)))
                ours_s, ours_mb = measure([airflow_bin, "dags", "test", "Airflow_Lab2"], env, work / f"ours-{rows}.log")
                plain_s, plain_mb = measure([PYTHON, __file__, "--plain", str(data)], None, work / f"plain-{rows}.log")
                results[str(rows)] = {"ours_s": ours_s, "ours_peak_mib": ours_mb, "plain_s": plain_s, "plain_peak_mib": plain_mb}
                print(f"  {rows:>9,} rows: ours {ours_s:.1f} s, {ours_mb:.0f} MiB; plain {plain_s:.1f} s, {plain_mb:.0f} MiB", flush=True)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    fixed = results["1000"]
    rows_out, checks = [], {}
    for rows in map(str, sizes):
        r = results[rows]
        time_ratio = (r["ours_s"] - fixed["ours_s"]) / r["plain_s"]
        rss_ratio = (r["ours_peak_mib"] - fixed["ours_peak_mib"]) / r["plain_peak_mib"]
        checks[rows] = {"time_ratio": time_ratio, "rss_ratio": rss_ratio, "met": time_ratio <= TARGET and rss_ratio <= TARGET}
        rows_out.append(
            [
                f"{int(rows):,}",
                f"{r['ours_s']:.1f}",
                f"{r['plain_s']:.1f}",
                f"{time_ratio:.2f}",
                f"{r['ours_peak_mib']:.0f}",
                f"{r['plain_peak_mib']:.0f}",
                f"{rss_ratio:.2f}",
                verdict(checks[rows]["met"]),
            ]
        )
    print(
        f"\n(5) data scale: `airflow dags test Airflow_Lab2` against a plain script (load {load()}); "
        f"Airflow's fixed cost (1k rows): {fixed['ours_s']:.1f} s, {fixed['ours_peak_mib']:.0f} MiB"
    )
    print(table(["rows", "ours s", "plain s", "(ours-fixed)/plain", "ours MiB", "plain MiB", "(ours-fixed)/plain", ""], rows_out))
    out = {"results": results, "targets": checks, "target": TARGET}
    write(_common.result_name("data_scale"), out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000", help="row counts, comma-separated")
    parser.add_argument("--keep", help="keep the datasets, Airflow home and logs in this folder")
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain(args.plain)
        sys.exit(0)
    main([int(s) for s in args.sizes.split(",")], args.keep)
