"""A small TTL cache shared by all requests, so that page loads do not each reach Airflow.

Failures are cached too (for the same TTL): when Airflow is down, pages answer at once instead of
each waiting for a connect timeout. One thread refreshes a stale key while the others wait for it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from adclick_ops.airflow_api import AirflowError

_MAX_KEYS = 512


class TTLCache:
    """`get(key, compute)` returns the value (or re-raises the AirflowError) computed less than `ttl` s ago.

    A `ttl` of 0 turns the cache off: every call computes (the benchmark's "no cache" variant).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.ttl = float(ttl)
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, bool, Any]] = {}
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def _fresh(self, key: Hashable) -> tuple[bool, Any] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1], entry[2]

    @staticmethod
    def _unpack(ok: bool, payload: Any) -> Any:
        if ok:
            return payload
        # A fresh copy per raise: one exception object must not collect tracebacks from many threads.
        raise copy.copy(payload)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        if self.ttl <= 0:
            return compute()
        hit = self._fresh(key)
        if hit is not None:
            return self._unpack(*hit)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            hit = self._fresh(key)
            if hit is None:
                try:
                    hit = (True, compute())
                except AirflowError as exc:
                    hit = (False, exc)
                self._store(key, hit)
        return self._unpack(*hit)

    def _store(self, key: Hashable, hit: tuple[bool, Any]) -> None:
        now = self._clock()
        with self._lock:
            if len(self._entries) >= _MAX_KEYS:
                for old in [k for k, e in self._entries.items() if e[0] <= now]:
                    del self._entries[old]
                    self._key_locks.pop(old, None)
            self._entries[key] = (now + self.ttl, *hit)
