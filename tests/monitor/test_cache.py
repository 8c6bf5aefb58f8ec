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


def test_value_is_reused_until_the_ttl_passes_then_refreshed_behind_the_stale_one():
    clock = Clock()
    cache = TTLCache(5, clock=clock)
    compute, calls = counter()
    assert [cache.get("k", compute) for _ in range(3)] == [1, 1, 1]
    clock.now += 4.9
    assert cache.get("k", compute) == 1
    assert len(calls) == 1
    clock.now += 0.2
    assert cache.get("k", compute) == 1  # stale, answered at once; a refresh has started
    cache.settle()
    assert cache.get("k", compute) == 2
    assert len(calls) == 2


def test_a_value_long_past_its_ttl_is_refreshed_before_it_is_answered():
    clock = Clock()
    cache = TTLCache(5, clock=clock)  # grace: 10 s past the TTL
    compute, calls = counter()
    assert cache.get("k", compute) == 1
    clock.now += 16
    assert cache.get("k", compute) == 2


def test_a_slow_computation_is_not_waited_for_beyond_the_wait():
    import threading

    from adclick_ops.monitor.cache import AirflowSlow

    release = threading.Event()
    cache = TTLCache(5, clock=Clock(), wait=0.05)

    def slow():
        release.wait(30)
        return "late"

    with pytest.raises(AirflowSlow, match="has not answered within 0.05 s"):
        cache.get("k", slow)
    with pytest.raises(AirflowSlow):  # the same refresh is still under way: not a second one
        cache.get("k", slow)
    release.set()
    cache.settle()
    assert cache.get("k", slow) == "late"


def test_refreshes_at_once_are_bounded():
    import threading

    from adclick_ops.monitor.cache import AirflowSlow

    release = threading.Event()
    cache = TTLCache(5, clock=Clock(), wait=0.01, max_refreshers=2)
    started = []

    def slow():
        started.append(1)
        release.wait(30)
        return "v"

    for key in ("a", "b", "c", "d"):
        with pytest.raises(AirflowSlow):
            cache.get(key, slow)
    assert len(started) <= 2
    with pytest.raises(AirflowSlow, match="already waiting on 2 answers"):
        cache.get("e", slow)
    # a priority key (the health check) is not held back by the others
    assert cache.get("health", lambda: "up", priority=True) == "up"
    release.set()
    cache.settle()


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
