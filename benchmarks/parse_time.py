"""Item 1: parse time of four DAG folders of the same graph, each parse in a fresh process.

(a) our dags/ (validated YAML rendered by dag-factory), (b) the seed replica (pandas and scikit-learn
imported at the top), (c) the same graph hand-written with heavy imports inside the callables (the
floor), (d) plain dag-factory rendering the same graph from one YAML file without our validation.
The variants are measured in interleaved rounds, so that a burst of load on the machine hits them all;
the best round of each is reported. Prints a table and writes benchmarks/results/parse_time.json.

    .venv/bin/python benchmarks/parse_time.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import BENCH, FLOOR_DAGS, MODES, PLAIN_DAGS, PYTHON, SEED_DAGS, airflow_env, bytecode, load, table, verdict, write  # noqa: E402

VARIANTS = {
    "a": ("ours: dags/ (validation + dag-factory)", _common.OUR_DAGS),
    "b": ("seed replica (heavy imports at top)", SEED_DAGS),
    "c": ("hand-written, lazy imports (floor)", FLOOR_DAGS),
    "d": ("plain dag-factory from YAML", PLAIN_DAGS),
}
TARGETS = {"a/b": 0.05, "a/d": 1.0}


def parse_rounds(folders: list[Path], rounds: int, env: dict[str, str]) -> list[dict]:
    """Parse the folders `rounds` times, interleaved, each parse in a fresh child of one Airflow process."""
    out = subprocess.run(
        [PYTHON, str(BENCH / "parse_probe.py"), str(rounds), *map(str, folders)], env=env, capture_output=True, text=True, timeout=600
    )
    results = [json.loads(line[2:]) for line in out.stdout.splitlines() if line.startswith("@@")]
    if out.returncode != 0 or len(results) != rounds * len(folders) or any("error" in r for r in results):
        raise SystemExit(f"parsing failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return results


def measure(runs: int, cached: bool) -> dict:
    samples: dict[str, list[dict]] = {k: [] for k in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        env = bytecode(airflow_env(Path(tmp) / "airflow", _common.OUR_DAGS), cached)
        folders = [folder for _, folder in VARIANTS.values()]
        if cached:
            parse_rounds(folders, 1, env)  # writes the bytecode cache; not counted
        by_folder = {str(folder): key for key, (_, folder) in VARIANTS.items()}
        for r in parse_rounds(folders, runs, env):
            samples[by_folder[r["folder"]]].append(r)
    best = {k: min(s, key=lambda r: r["ms"]) for k, s in samples.items()}
    for k, r in best.items():
        if r["import_errors"] or len(r["dags"]) != 2:
            raise SystemExit(f"variant {k} did not parse into 2 DAGs: {r}")
    ms = {k: r["ms"] for k, r in best.items()}
    ratios = {"a/b": ms["a"] / ms["b"], "a/d": ms["a"] / ms["d"], "a/c": ms["a"] / ms["c"], "d/c": ms["d"] / ms["c"]}
    mode = MODES["cached" if cached else "none"]
    rows = [
        [
            f"({k}) {VARIANTS[k][0]}",
            f"{ms[k]:.0f}",
            f"{sorted(r['ms'] for r in samples[k])[len(samples[k]) // 2]:.0f}",
            f"{best[k]['tasks']}",
            ",".join(best[k]["modules_loaded"]) or "-",
        ]
        for k in VARIANTS
    ]
    print(f"\nParse time, {mode}: DagBag of each folder in a fresh forked process, best of {runs} (load {load()})")
    print(table(["variant", "best ms", "median ms", "tasks", "modules loaded by the parse"], rows))
    checks = {name: {"ratio": ratios[name], "target": f"<= {limit}", "met": ratios[name] <= limit} for name, limit in TARGETS.items()}
    print(
        table(
            ["ratio", "value", "target", ""],
            [
                [
                    n,
                    f"{ratios[n]:.3f}",
                    checks[n]["target"] if n in checks else "(report)",
                    verdict(checks[n]["met"]) if n in checks else "",
                ]
                for n in ratios
            ],
        )
    )
    return {
        "mode": mode,
        "best_ms": ms,
        "samples_ms": {k: [round(r["ms"], 1) for r in s] for k, s in samples.items()},
        "variants": {k: {"label": VARIANTS[k][0], "folder": str(VARIANTS[k][1]), **best[k]} for k in VARIANTS},
        "ratios": ratios,
        "targets": checks,
    }


def main(runs: int = 9, project: str | None = None, modes: tuple[str, ...] = ("cached", "none")) -> dict:
    _common.use_project(project)
    VARIANTS["a"] = (VARIANTS["a"][0], _common.OUR_DAGS)
    load_before = load()
    result = {"runs": runs, "project": str(_common.PROJECT), "load_before": load_before}
    if "cached" in modes:
        result["bytecode_cached"] = measure(runs, cached=True)
    if "none" in modes:
        result["no_bytecode_cache"] = measure(runs, cached=False)
    result["load_after"] = load()
    print(f"-> {write(_common.result_name('parse_time'), result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--project", help="measure the dags/ and adclick_ops/ of this copy of the project as (a)")
    parser.add_argument("--modes", default="cached,none", help="bytecode modes: cached, none, or both (default)")
    args = parser.parse_args()
    main(args.runs, args.project, tuple(args.modes.split(",")))
