"""Item 2: parse time of our dags/ against 1, 10, 100, 500 and 1,000 generated pipeline files.

Each generated file is pipelines/airflow_lab2.yaml with its own DAG id (Airflow_Lab2_0001, ...) and
its own estimator settings; the monitor DAG they trigger is declared once more (so N files render
N + 1 DAGs). Parsed like Airflow's DAG processor does (benchmarks/parse_probe.py), best of several,
sizes interleaved. Prints a table and writes benchmarks/results/scale.json.

    .venv/bin/python benchmarks/scale.py [--runs 3] [--sizes 1,10,100,500,1000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse_time import parse_rounds  # noqa: E402

import _common  # noqa: E402
from _common import airflow_env, bytecode, load, table, verdict, write  # noqa: E402

TARGETS = {"ms_per_extra_dag": 5.0, "seconds_for_1000": 5.0}


def generate(folder: Path, count: int, source: Path) -> None:
    folder.mkdir(parents=True)
    shutil.copy(source / "defaults.yaml", folder / "defaults.yaml")
    shutil.copy(source / "airflow_lab2_flask.yaml", folder / "airflow_lab2_flask.yaml")
    text = (source / "airflow_lab2.yaml").read_text()
    assert text.count("Airflow_Lab2:") == 1
    for i in range(1, count + 1):
        variant = text.replace("Airflow_Lab2:", f"Airflow_Lab2_{i:04d}:", 1).replace("max_iter: 1000", f"max_iter: {1000 + i}")
        (folder / f"airflow_lab2_{i:04d}.yaml").write_text(variant)


def main(runs: int = 3, sizes: tuple[int, ...] = (1, 10, 100, 500, 1000), project: str | None = None) -> dict:
    _common.use_project(project)
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folders = {}
        for n in sizes:
            folders[n] = Path(tmp) / f"pipelines-{n}"
            generate(folders[n], n, _common.PROJECT / "pipelines")
        env = bytecode(airflow_env(Path(tmp) / "airflow", _common.OUR_DAGS), cached=True)
        args = {f"{_common.OUR_DAGS}@{folders[n]}": n for n in sizes}
        parse_rounds(list(args), 1, env)  # bytecode cache warm-up, not counted
        samples: dict[int, list[dict]] = {n: [] for n in sizes}
        for r in parse_rounds(list(args), runs, env):
            samples[args[r["folder"]]].append(r)
    best = {n: min(s, key=lambda r: r["ms"]) for n, s in samples.items()}
    for n, r in best.items():
        if r["import_errors"] or len(r["dags"]) != n + 1:
            raise SystemExit(f"{n} files did not parse into {n + 1} DAGs: {r['import_errors'] or len(r['dags'])}")
    rows, marginal = [], {}
    previous = None
    for n in sizes:
        ms = best[n]["ms"]
        if previous is not None:
            marginal[n] = (ms - best[previous]["ms"]) / (n - previous)
        rows.append([n, n + 1, f"{ms:.0f}", f"{ms / (n + 1):.1f}", f"{marginal[n]:.2f}" if n in marginal else "-"])
        previous = n
    worst_marginal = max(marginal.values()) if marginal else 0.0
    big = max(sizes)
    linear = {
        "marginal_ms_per_dag": marginal,
        "spread": (max(marginal.values()) / min(marginal.values())) if len(marginal) > 1 and min(marginal.values()) > 0 else None,
    }
    checks = {
        "ms_per_extra_dag": {
            "value": worst_marginal,
            "target": f"<= {TARGETS['ms_per_extra_dag']:g}",
            "met": worst_marginal <= TARGETS["ms_per_extra_dag"],
        },
        f"seconds_for_{big}": {
            "value": best[big]["ms"] / 1000,
            "target": f"< {TARGETS['seconds_for_1000']:g} (for 1,000)",
            "met": big >= 1000 and best[big]["ms"] / 1000 < TARGETS["seconds_for_1000"],
        },
    }
    print(f"\nScale: our dags/ with N generated pipeline files, bytecode cached, best of {runs} (load {load_before} -> {load()})")
    print(table(["pipeline files", "DAGs", "total ms", "ms per DAG", "marginal ms per extra DAG"], rows))
    print(table(["target", "value", "limit", ""], [[k, f"{v['value']:.2f}", v["target"], verdict(v["met"])] for k, v in checks.items()]))
    result = {
        "runs": runs,
        "sizes": list(sizes),
        "project": str(_common.PROJECT),
        "load_before": load_before,
        "load_after": load(),
        "best_ms": {n: best[n]["ms"] for n in sizes},
        "samples_ms": {n: [round(r["ms"], 1) for r in s] for n, s in samples.items()},
        "linearity": linear,
        "targets": checks,
    }
    print(f"-> {write(_common.result_name('scale'), result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1,10,100,500,1000")
    parser.add_argument("--project", help="measure the dags/ and adclick_ops/ of this copy of the project")
    args = parser.parse_args()
    main(args.runs, tuple(int(x) for x in args.sizes.split(",")), args.project)
