"""/health says whether Airflow answers now: what its health endpoint answered during that request, never earlier."""

from __future__ import annotations

import threading

import pytest

from adclick_ops.airflow_api import AirflowUnreachable
from adclick_ops.monitor import create_app
from adclick_ops.monitor.cache import AirflowSlow, FreshCheck

from tests.monitor import PATIENT
from tests.support.airflow_stub import UI_URL, AirflowStub, set_state


def _client(url: str, **config):
    return create_app({"TESTING": True, "AIRFLOW_URL": url, "AIRFLOW_UI_URL": UI_URL, **PATIENT, **config}).test_client()


def test_health_says_unreachable_as_soon_as_airflow_stops():
    stub = AirflowStub().start()
    set_state(stub, "success")
    client = _client(stub.url)  # a cache of 5 s: the pages' answers, never /health's
    assert client.get("/health").get_json()["airflow"]["reachable"] is True
    assert client.get("/success").status_code == 200
    stub.stop()  # nothing listens on its port any more
    airflow = client.get("/health").get_json()["airflow"]
    assert airflow["reachable"] is False, f"/health said {airflow} right after Airflow stopped; expected reachable false"
    assert airflow["reason"]


def test_health_says_null_as_soon_as_airflow_stops_answering(airflow):
    set_state(airflow, "success")
    client = _client(airflow.url, HEALTH_WAIT=2)
    assert client.get("/health").get_json()["airflow"]["reachable"] is True
    airflow.drip = 0.05  # still connected, but its answers take seconds: none within the 2 s
    try:
        airflow_said = client.get("/health").get_json()["airflow"]
    finally:
        airflow.drip = None
    assert airflow_said["reachable"] is None, f"/health said {airflow_said} while Airflow did not answer; expected reachable null"
    assert airflow_said["reason"] == "Airflow has not answered within 2 s"


def test_health_says_reachable_again_as_soon_as_airflow_answers(airflow):
    set_state(airflow, "success")
    client = _client(airflow.url)
    airflow.fail_status = 500
    assert client.get("/health").get_json()["airflow"] == {
        "url": airflow.url,
        "reachable": False,
        "reason": "Airflow health endpoint answered HTTP 500",
    }
    airflow.fail_status = None
    assert client.get("/health").get_json()["airflow"]["reachable"] is True
    assert airflow.calls["health"] == 2


class _CountedEvent(threading.Event):
    """An Event that counts the threads that have begun to wait on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = 0
        self._count = threading.Lock()

    def wait(self, timeout: float | None = None) -> bool:
        with self._count:
            self.waiting += 1
        return super().wait(timeout)


def test_a_fresh_check_asks_once_however_many_wait_and_anew_after(monkeypatch):
    import time

    from adclick_ops.monitor import cache

    events: list[_CountedEvent] = []

    class CountedRefresh(cache._Refresh):
        def __init__(self) -> None:
            super().__init__()
            self.done = _CountedEvent()
            events.append(self.done)

    monkeypatch.setattr(cache, "_Refresh", CountedRefresh)
    started, release = [], threading.Event()

    def health():
        started.append(1)
        release.wait(30)
        return {"ok": True}

    check = FreshCheck(health, wait=30)
    answers: list[object] = []
    askers = [threading.Thread(target=lambda: answers.append(check.ask())) for _ in range(8)]
    for asker in askers:
        asker.start()
    deadline = time.monotonic() + 30
    while not (events and events[0].waiting == 8) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(events) == 1 and events[0].waiting == 8, f"expected 8 requests waiting on one check, found {[e.waiting for e in events]}"
    release.set()
    for asker in askers:
        asker.join(30)
    assert answers == [{"ok": True}] * 8 and len(started) == 1  # one question to Airflow for eight requests
    assert check.ask() == {"ok": True} and len(started) == 2  # a later request asks again: nothing is remembered


def test_a_fresh_check_that_has_not_ended_within_the_wait_says_so():
    release = threading.Event()
    try:
        with pytest.raises(AirflowSlow, match="^Airflow has not answered within 0.05 s$"):
            FreshCheck(lambda: release.wait(30), wait=0.05).ask()
    finally:
        release.set()


def test_a_fresh_check_says_why_airflow_failed_each_time():
    def down():
        raise AirflowUnreachable("cannot connect to Airflow")

    check = FreshCheck(down, wait=30)
    for _ in range(2):
        with pytest.raises(AirflowUnreachable, match="cannot connect to Airflow"):
            check.ask()
