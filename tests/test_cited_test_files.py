"""Every test file that the docs and the code's comments cite exists, so that a reader who follows one finds it."""

from __future__ import annotations

import re

from tests.support import PROJECT

# a path under tests/, or a bare test file name (found anywhere under tests/)
CITED = re.compile(r"\b(tests/[\w/.-]+\.py|test_\w+\.py)\b")


def _citations() -> list[tuple[str, str]]:
    sources = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md")), *sorted((PROJECT / "adclick_ops").rglob("*.py"))]
    return [(str(path.relative_to(PROJECT)), cited) for path in sources for cited in CITED.findall(path.read_text(encoding="utf-8"))]


def test_every_cited_test_file_exists():
    names = {path.name for path in (PROJECT / "tests").rglob("test_*.py")}
    missing = [
        (source, cited)
        for source, cited in _citations()
        if not ((PROJECT / cited).is_file() if cited.startswith("tests/") else cited in names)
    ]
    assert missing == []


def test_the_check_reads_citations_of_both_forms():
    cited = {c for _, c in _citations()}
    assert "tests/config/test_estimator_rules.py" in cited
    assert "test_hardening_yaml.py" in cited
