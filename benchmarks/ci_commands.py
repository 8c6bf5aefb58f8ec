"""The commands a CI job runs: `validate` in each format and `plan`, as a fresh process each time, and
how long the pre-commit hook's environment takes to install from scratch.

Each command is timed from process start to exit (what a CI step waits for), in a throw-away git
repository holding a copy of pipelines/ with three knobs changed. Prints a table and writes
benchmarks/results/ci_commands.json.

    .venv/bin/python benchmarks/ci_commands.py [--runs 9] [--no-hook]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, ROOT, load, table, verdict, write  # noqa: E402

CLI = str(Path(PYTHON).parent / "adclick-ops")
COMMANDS = [
    ["validate"],
    ["validate", "--format", "json"],
    ["validate", "--format", "github", "pipelines/airflow_lab2.yaml"],
    ["plan"],
    ["plan", "--format", "markdown"],
]
TARGET_S = 1.0  # "well under a second" for plan; the same bound for validate
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "b@example.org",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "b@example.org",
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def _repo(root: Path) -> Path:
    repo = root / "repo"
    shutil.copytree(ROOT / "pipelines", repo / "pipelines")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    lab2 = repo / "pipelines" / "airflow_lab2.yaml"
    lab2.write_text(
        lab2.read_text()
        .replace("test_size: 0.3", "test_size: 0.2")
        .replace("scalers: [minmax, standard]", "scalers: [robust]")
        .replace("to: [ml-team@example.com]", "to: [ml-team@example.com, lead@example.com]")
    )
    return repo


def _time(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    # plan exits 1 when it has changes to show, as this repository's three edits are
    if result.returncode != 0 and not (cmd[1:2] == ["plan"] and result.returncode == 1):
        raise SystemExit(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed


def hook_install(root: Path) -> float:
    """Seconds for `pre-commit install-hooks` with an empty PRE_COMMIT_HOME: a fresh CI runner."""
    hook = root / "hook"
    files = (
        subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (hook / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, hook / name)
    _git(hook, "init", "-q")
    _git(hook, "add", "-A")
    _git(hook, "commit", "-q", "-m", "snapshot")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=hook, capture_output=True, text=True, check=True).stdout.strip()
    repo = root / "repo"
    (repo / ".pre-commit-config.yaml").write_text(f"repos:\n  - repo: {hook}\n    rev: {sha}\n    hooks: [{{id: adclick-ops-validate}}]\n")
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(root / "pre-commit-home")}
    return _time([str(Path(PYTHON).parent / "pre-commit"), "install-hooks"], repo, env)


def main(runs: int = 9, hook: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {"runs": runs, "load_before": load(), "commands": []}
    rows = []
    with tempfile.TemporaryDirectory(prefix="adclick-bench-ci-") as tmp:
        repo = _repo(Path(tmp))
        for cmd in COMMANDS:
            _time([CLI, *cmd], repo)  # warm the bytecode and page cache; not counted
            samples = [_time([CLI, *cmd], repo) for _ in range(runs)]
            med = statistics.median(samples)
            met = med < TARGET_S
            rows.append([f"adclick-ops {' '.join(cmd)}", f"{min(samples) * 1000:.0f}", f"{med * 1000:.0f}", verdict(met)])
            result["commands"].append(
                {
                    "command": cmd,
                    "best_ms": min(samples) * 1000,
                    "median_ms": med * 1000,
                    "samples_ms": [s * 1000 for s in samples],
                    "target_ms": TARGET_S * 1000,
                    "met": met,
                }
            )
        if hook:
            result["hook_install_s"] = hook_install(Path(tmp))
    print(f"\nCI commands, a fresh process each, {runs} runs (load {load()})")
    print(table(["command", "best ms", "median ms", f"< {TARGET_S * 1000:.0f} ms"], rows))
    if hook:
        print(f"pre-commit install-hooks, empty PRE_COMMIT_HOME: {result['hook_install_s']:.1f} s")
    result["load_after"] = load()
    write("ci_commands", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-hook", action="store_true", help="leave out the hook install (it needs PyPI)")
    args = parser.parse_args()
    main(args.runs, not args.no_hook)
