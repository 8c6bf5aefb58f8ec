"""How validation time grows with the size of one pipeline file: linear, and a 64 KiB file in under 0.3 s.

Valid files of 1 to 64 KiB are made from the shipped Airflow_Lab2 by adding tasks (a chain, so
every dependency and the cycle check are exercised), features, tags and trigger conf entries;
a second series repeats one feature name thousands of times (the duplicate check). Each file is
read and validated in-process (`load_pipeline_file`, the cache bypassed), best of several runs.
Prints a table, the time per KiB, and writes benchmarks/results/validate_scale.json.

    .venv/bin/python benchmarks/validate_scale.py [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adclick_ops.config import catalog  # noqa: E402
from adclick_ops.config.yamlio import MAX_FILE_BYTES  # noqa: E402

import _common  # noqa: E402
from _common import load, table, verdict, write  # noqa: E402

TARGET_S = 0.3
SIZES_KIB = (1, 4, 16, 32, 64)


def valid_file(kib: int) -> str:
    doc = yaml.safe_load((_common.ROOT / "pipelines" / "airflow_lab2.yaml").read_text())
    dag = doc["Airflow_Lab2"]
    n = 0
    last = "load_model_task"
    while True:
        dag["tasks"][f"extra_{n}"] = {"operator": "airflow.providers.standard.operators.empty.EmptyOperator", "dependencies": [last]}
        dag["trigger"]["conf"][f"key_{n}"] = f"{{{{ run_id }}}} value {n}"
        last = f"extra_{n}"
        n += 1
        if n % 10:
            continue
        text = yaml.safe_dump(doc, sort_keys=False)
        if len(text.encode()) > kib * 1024 - 2000:
            return text


def duplicates_file(kib: int) -> str:
    doc = yaml.safe_load((_common.ROOT / "pipelines" / "airflow_lab2.yaml").read_text())
    base = yaml.safe_dump(doc, sort_keys=False)
    room = min(kib * 1024, MAX_FILE_BYTES) - len(base.encode()) - 200
    features = ["Age"] * max(room // len("    - Age\n"), 2)
    doc["Airflow_Lab2"]["training"]["features"] = features
    return yaml.safe_dump(doc, sort_keys=False)


def time_one(path: Path, runs: int, expect_valid: bool) -> float:
    best = float("inf")
    for _ in range(runs):
        catalog._cache.clear()
        start = time.perf_counter()
        try:
            catalog.load_pipeline_file(path)
            ok = True
        except catalog.ConfigError:
            ok = False
        best = min(best, time.perf_counter() - start)
        assert ok == expect_valid, path
    return best


def main(runs: int = 5) -> dict:
    rows, result = [], {"runs": runs, "valid": {}, "duplicates": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kib in SIZES_KIB:
            for series, make, valid in (("valid", valid_file, True), ("duplicates", duplicates_file, False)):
                path = Path(tmp) / f"{series}_{kib}.yaml"
                path.write_text(make(kib))
                size = path.stat().st_size
                seconds = time_one(path, runs, valid)
                result[series][kib] = {"bytes": size, "seconds": seconds, "ms_per_kib": 1000 * seconds / (size / 1024)}
                rows.append([series, f"{size:,}", f"{seconds * 1000:.1f}", f"{1000 * seconds / (size / 1024):.2f}"])
    big = result["valid"][SIZES_KIB[-1]]["seconds"]
    per_kib = [v["ms_per_kib"] for v in result["valid"].values()][1:]
    linear = max(per_kib) <= 2 * min(per_kib)
    result["targets"] = {
        "64 KiB valid file": {"value": big, "target": f"< {TARGET_S} s", "met": big < TARGET_S},
        "linear": {"value": per_kib, "target": "ms per KiB within a factor 2 from 4 to 64 KiB", "met": linear},
    }
    print(f"\nvalidation of one file, best of {runs} (load {load()})")
    print(table(["series", "bytes", "ms", "ms per KiB"], rows))
    print(f"64 KiB valid file: {big * 1000:.0f} ms, target < {TARGET_S * 1000:.0f} ms: {verdict(big < TARGET_S)}")
    print(f"linear (ms per KiB within a factor 2): {verdict(linear)}")
    write(_common.result_name("validate_scale"), result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    main(parser.parse_args().runs)
