"""Hardening tests: at the end of the session, write how many cases of each kind were tried.

The numbers land in test-artifacts/hardening-counts.json; docs/reliability.md quotes them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardening_tally import TALLY  # noqa: E402

TALLY_FILE = Path(__file__).resolve().parents[2] / "test-artifacts" / "hardening-counts.json"


def pytest_sessionfinish(session, exitstatus):
    if not TALLY:
        return
    TALLY_FILE.parent.mkdir(parents=True, exist_ok=True)
    # A partial session (-k, one file) keeps the last numbers of the kinds it did not run.
    previous = {}
    if TALLY_FILE.exists():
        try:
            previous = json.loads(TALLY_FILE.read_text()).get("cases", {})
        except ValueError:
            previous = {}
    cases = dict(sorted({**previous, **TALLY}.items()))
    TALLY_FILE.write_text(json.dumps({"cases": cases, "total": sum(cases.values())}, indent=2) + "\n")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"hardening: {sum(TALLY.values())} cases tried; counts in {os.path.relpath(TALLY_FILE)}")
