"""Helpers of the hardening tests: paths, YAML edits, and a tally of the cases tried.

The tally is written to test-artifacts/hardening-counts.json when the test process exits (kinds
not run this time keep their previous numbers); docs/reliability.md quotes it.
"""

from __future__ import annotations

import atexit
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[2]
TALLY_FILE = PROJECT / "test-artifacts" / "hardening-counts.json"
TALLY: Counter[str] = Counter()


def count(kind: str, n: int = 1) -> None:
    """Record that `n` cases of `kind` were tried."""
    TALLY[kind] += n


@atexit.register
def _write_tally() -> None:
    if not TALLY:
        return
    previous: dict[str, int] = {}
    try:
        previous = json.loads(TALLY_FILE.read_text())["cases"]
    except (OSError, ValueError, KeyError):
        pass
    cases = dict(sorted({**previous, **TALLY}.items()))
    TALLY_FILE.parent.mkdir(parents=True, exist_ok=True)
    TALLY_FILE.write_text(json.dumps({"cases": cases, "total": sum(cases.values())}, indent=2) + "\n")
    print(f"\nhardening: {sum(TALLY.values())} cases tried in this run; counts in {TALLY_FILE}")


class NoAliasDumper(yaml.SafeDumper):
    """Writes repeated objects out in full: the reader refuses anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=NoAliasDumper, sort_keys=False, allow_unicode=True)


def edit_yaml(path: Path, change: Callable[[dict], Any]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(dump(data))
