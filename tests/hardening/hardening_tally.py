"""A tally of the cases the hardening tests try, by kind; conftest.py writes it to test-artifacts/."""

from __future__ import annotations

from collections import Counter

TALLY: Counter[str] = Counter()


def count(kind: str, n: int = 1) -> None:
    TALLY[kind] += n
