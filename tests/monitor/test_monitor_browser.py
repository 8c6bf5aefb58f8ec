"""Headless Chromium loads /success from a live monitor (waitress) and renders the run, metrics and chart."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from adclick_ops.monitor import create_app
from adclick_ops.monitor.server import MonitorServer

from airflow_stub import set_state

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        reason = "headless Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; browser tests are mandatory when CI=true")
        pytest.skip(reason)
    return path


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(profile)},
    )


def test_success_page_renders_in_chromium(chromium, airflow, tmp_path):
    run_id = set_state(airflow, "success")
    airflow.xcoms[run_id].update(estimator="LogisticRegression", scalers=["StandardScaler"], model_version=3)
    with MonitorServer(create_app({"AIRFLOW_URL": airflow.url}), "127.0.0.1", 0) as server:
        url = f"{server.url}/success"
        dom = _chromium(chromium, tmp_path / "dom", "--dump-dom", url)
        assert dom.returncode == 0, dom.stderr[-2000:]
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "monitor_success.png"
        shot.unlink(missing_ok=True)
        capture = _chromium(chromium, tmp_path / "shot", f"--screenshot={shot}", "--window-size=1280,1400", url)
    html = dom.stdout
    assert f'id="run-id">{run_id}<' in html
    assert 'id="metric-accuracy">0.9612<' in html
    assert '<svg id="metrics-chart"' in html and "<polyline" in html
    # the time axis: the two runs started at 08:00 and 09:00 UTC the same day
    assert ">08:00</text>" in html and ">09:00</text>" in html
    assert 'id="run-estimator">LogisticRegression<' in html
    assert '<td class="estimator">LogisticRegression</td>' in html
    assert capture.returncode == 0, capture.stderr[-2000:]
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty image
