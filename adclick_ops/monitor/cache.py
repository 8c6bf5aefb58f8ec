"""A TTL cache shared by all requests, so that page loads do not each reach Airflow, nor wait on it long.

Airflow is asked by refresh threads, one per stale key at a time, never by more than
`max_refreshers` at once. A request never waits on a refresh for more than `wait` seconds:

- a fresh value (or Airflow error) is answered at once;
- a stale value is answered at once while it is less than `grace` seconds past its TTL, and a
  refresh starts behind it; an older one is answered after at most `wait` seconds, refreshed or not;
- with no value yet, the request waits at most `wait` seconds for the first refresh, then gets
  `AirflowSlow` (an `AirflowUnreachable`: the pages show "Airflow is unreachable" with the reason).

Failures are cached too (for the same TTL): when Airflow is down, pages answer at once instead of
each waiting for a timeout. A stale failure is never answered without waiting for its refresh.

Within a request's budget (`start_budget` and `end_budget`, which the views call for each request; `request_budget`
as a block), the waits of every `get` together
last at most the budget: a page asks several questions, and its budget is shared by all of them.
`FreshCheck` is the question that is never cached (Airflow's health check behind /health).
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any

from adclick_ops.airflow_api import AirflowError, AirflowUnreachable

_MAX_KEYS = 512

# The request being served: (when it must have answered, as time.monotonic(); its whole budget in seconds).
# Every wait of that request on Airflow together, not each on its own, stays within the budget (a page asks
# for the latest run, the recent runs and the pipelines' state: three waits of 2 s each would make 6).
_budget: ContextVar[tuple[float, float] | None] = ContextVar("adclick_monitor_budget", default=None)


@contextlib.contextmanager
def request_budget(seconds: float) -> Iterator[None]:
    """Within this block, the waits on Airflow (`TTLCache.get`, `FreshCheck.ask`) together last at most `seconds`."""
    token = start_budget(seconds)
    try:
        yield
    finally:
        end_budget(token)


def start_budget(seconds: float) -> Any:
    """`request_budget` for frameworks that open and close a request in two hooks: returns what `end_budget` takes."""
    return _budget.set((time.monotonic() + seconds, float(seconds)))


def end_budget(token: Any) -> None:
    _budget.reset(token)


def budgeted(limit: float) -> tuple[float, float | None]:
    """(how long a wait of at most `limit` s may last within the request's budget; that budget, when it is the shorter)."""
    budget = _budget.get()
    if budget is None:
        return limit, None
    left = max(0.0, budget[0] - time.monotonic())
    return (left, budget[1]) if left < limit else (limit, None)


class AirflowSlow(AirflowUnreachable):
    """Airflow has not answered within the time a request may wait; the refresh goes on behind."""


class _Refresh:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None  # a bug of the monitor: re-raised, never stored
        self.hit: tuple[bool, Any] | None = None  # FreshCheck's answer: (True, value) or (False, AirflowError)


class FreshCheck:
    """A question whose answer is seen, never remembered: `ask` answers what `compute` returned while it waited.

    At most one `compute` runs at a time (however many requests ask, Airflow gets one question at a time):
    an `ask` during one waits for its end, within `wait` s (and the request's budget); an `ask` after it
    starts the next. So the answer was always given during the `ask`, never before it.
    """

    def __init__(self, compute: Callable[[], Any], wait: float):
        self._compute = compute
        self.wait = float(wait)
        self._lock = threading.Lock()
        self._running: _Refresh | None = None

    def ask(self) -> Any:
        """`compute`'s value; its AirflowError re-raised; AirflowSlow when it has not ended within the wait."""
        limit, budget = budgeted(self.wait)
        with self._lock:
            check = self._running
            if check is None:
                check = self._running = _Refresh()
                threading.Thread(target=self._run, args=(check,), name="adclick-monitor-check", daemon=True).start()
        if not check.done.wait(limit):
            raise AirflowSlow(f"Airflow has not answered within {limit if budget is None else budget:g} s")
        if check.error is not None:
            raise copy.copy(check.error)
        assert check.hit is not None  # set before done, whenever error is not
        return TTLCache._unpack(*check.hit)

    def _run(self, check: _Refresh) -> None:
        try:
            try:
                check.hit = (True, self._compute())
            except AirflowError as exc:
                check.hit = (False, exc)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests, which raise it
            check.error = exc
        finally:
            with self._lock:
                self._running = None
            check.done.set()


class TTLCache:
    """`get(key, compute)` returns the value (or re-raises the AirflowError) computed less than `ttl` s ago.

    A `ttl` of 0 turns the cache off: every call computes, in the calling thread (the benchmark's
    "no cache" variant; without the cache nothing bounds how long a request waits on Airflow).
    """

    def __init__(
        self,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        wait: float = 2.0,
        grace: float | None = None,
        max_refreshers: int = 4,
        max_waiters: int | None = None,
    ):
        self.ttl = float(ttl)
        self.wait = float(wait)
        self.grace = float(grace) if grace is not None else 2 * self.ttl
        self.max_refreshers = int(max_refreshers)
        # How many requests may wait on Airflow at once; the others answer at once with what there is,
        # so that a server's threads are never all waiting (None: no limit).
        self.max_waiters = max_waiters
        self._waiting = 0
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, bool, Any]] = {}
        self._refreshes: dict[Hashable, _Refresh] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _unpack(ok: bool, payload: Any) -> Any:
        if ok:
            return payload
        # A fresh copy per raise: one exception object must not collect tracebacks from many threads.
        raise copy.copy(payload)

    def get(self, key: Hashable, compute: Callable[[], Any], *, wait: float | None = None, priority: bool = False) -> Any:
        """The value of `key`; `wait` overrides how long to wait on a refresh; `priority` ignores `max_refreshers`."""
        if self.ttl <= 0:
            return compute()
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and entry[0] > now:
            return self._unpack(entry[1], entry[2])
        refresh = self._refresh(key, compute, priority)
        stale_value = entry is not None and entry[1]
        if stale_value and now - entry[0] < self.grace:
            return entry[2]
        if refresh is None:
            if stale_value:
                return entry[2]
            raise AirflowSlow(
                f"the monitor is already waiting on {self.max_refreshers} answers from Airflow; it answers slowly or not at all"
            )
        return self._await(key, refresh, entry if stale_value else None, self.wait if wait is None else wait)

    def _await(self, key: Hashable, refresh: _Refresh, stale: tuple[float, bool, Any] | None, wait: float) -> Any:
        """The value `refresh` brings within `wait` seconds (less what the request has waited already);
        else the `stale` entry's value; else AirflowSlow."""
        limit, budget = budgeted(wait)
        may_wait, done_in_time = self._wait_on(refresh, limit)
        if done_in_time:
            if refresh.error is not None:
                raise copy.copy(refresh.error)
            done = self._entries.get(key)
            if done is not None:
                return self._unpack(done[1], done[2])
        if stale is not None:
            return stale[2]
        if not may_wait:
            raise AirflowSlow(
                f"{self.max_waiters} requests are already waiting on Airflow; the monitor keeps asking, try again in a moment"
            )
        # the request's whole budget when it was the shorter: that is how long the request has waited on Airflow
        waited = limit if budget is None else budget
        raise AirflowSlow(f"Airflow has not answered within {waited:g} s; the monitor keeps asking, try again in a moment")

    def _wait_on(self, refresh: _Refresh, limit: float) -> tuple[bool, bool]:
        """(whether this request may wait at all, under max_waiters; whether the refresh ended in time)."""
        with self._lock:
            may_wait = self.max_waiters is None or self._waiting < self.max_waiters
            self._waiting += may_wait
        try:
            return may_wait, refresh.done.wait(limit if may_wait else 0)
        finally:
            with self._lock:
                self._waiting -= may_wait

    def _refresh(self, key: Hashable, compute: Callable[[], Any], priority: bool) -> _Refresh | None:
        """The refresh of `key` under way, or a new one; None when too many are under way already."""
        with self._lock:
            running = self._refreshes.get(key)
            if running is not None:
                return running
            if not priority and len(self._refreshes) >= self.max_refreshers:
                return None
            refresh = self._refreshes[key] = _Refresh()
        thread = threading.Thread(target=self._run, args=(key, compute, refresh), name=f"adclick-monitor-refresh:{key!r:.40}", daemon=True)
        thread.start()
        return refresh

    def _run(self, key: Hashable, compute: Callable[[], Any], refresh: _Refresh) -> None:
        try:
            try:
                hit = (True, compute())
            except AirflowError as exc:
                hit = (False, exc)
            self._store(key, hit)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting request, which raises it
            refresh.error = exc
        finally:
            with self._lock:
                self._refreshes.pop(key, None)
            refresh.done.set()

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until no refresh is under way (tests, shutdown)."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                running = list(self._refreshes.values())
            if not running:
                return
            for refresh in running:
                refresh.done.wait(max(0.0, end - time.monotonic()))
            if time.monotonic() >= end:
                return

    def _store(self, key: Hashable, hit: tuple[bool, Any]) -> None:
        now = self._clock()
        with self._lock:
            if len(self._entries) >= _MAX_KEYS:
                for old in [k for k, e in self._entries.items() if e[0] + self.grace <= now]:
                    del self._entries[old]
                if len(self._entries) >= _MAX_KEYS:  # all recent: drop the oldest
                    del self._entries[min(self._entries, key=lambda k: self._entries[k][0])]
            self._entries[key] = (now + self.ttl, *hit)
