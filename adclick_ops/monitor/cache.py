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
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from adclick_ops.airflow_api import AirflowError, AirflowUnreachable

_MAX_KEYS = 512


class AirflowSlow(AirflowUnreachable):
    """Airflow has not answered within the time a request may wait; the refresh goes on behind."""


class _Refresh:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None  # a bug of the monitor: re-raised, never stored


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

    def _await(self, key: Hashable, refresh: _Refresh, stale: tuple[float, bool, Any] | None, limit: float) -> Any:
        """The value `refresh` brings within `limit` seconds; else the `stale` entry's value; else AirflowSlow."""
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
        raise AirflowSlow(f"Airflow has not answered within {limit:g} s; the monitor keeps asking, try again in a moment")

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
