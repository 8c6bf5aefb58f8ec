"""The TTL cache shared by the monitor's requests, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from adclick_ops.airflow_api import AirflowUnreachable
from adclick_ops.monitor.cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counter():
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    return compute, calls


def test_value_is_reused_until_the_ttl_passes():
    clock = Clock()
    cache = TTLCache(5, clock=clock)
    compute, calls = counter()
    assert [cache.get("k", compute) for _ in range(3)] == [1, 1, 1]
    clock.now += 4.9
    assert cache.get("k", compute) == 1
    clock.now += 0.2
    assert cache.get("k", compute) == 2
    assert len(calls) == 2


def test_keys_are_cached_apart():
    cache = TTLCache(5, clock=Clock())
    compute, calls = counter()
    assert (cache.get("a", compute), cache.get("b", compute), cache.get("a", compute)) == (1, 2, 1)


def test_zero_ttl_turns_the_cache_off():
    cache = TTLCache(0, clock=Clock())
    compute, calls = counter()
    assert [cache.get("k", compute) for _ in range(3)] == [1, 2, 3]


def test_airflow_failures_are_cached_for_the_ttl_too():
    clock = Clock()
    cache = TTLCache(5, clock=clock)
    attempts = []

    def down():
        attempts.append(1)
        raise AirflowUnreachable("cannot connect to Airflow")

    for _ in range(3):
        with pytest.raises(AirflowUnreachable, match="cannot connect"):
            cache.get("k", down)
    assert len(attempts) == 1
    clock.now += 6
    assert cache.get("k", lambda: "back") == "back"


def test_other_errors_are_not_cached():
    cache = TTLCache(5, clock=Clock())
    with pytest.raises(KeyError):
        cache.get("k", lambda: {}["missing"])
    assert cache.get("k", lambda: "computed") == "computed"
