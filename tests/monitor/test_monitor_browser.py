"""Headless Chromium loads /success from a live monitor (waitress) and renders the run, metrics and chart."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from adclick_ops.monitor import create_app
from adclick_ops.monitor.server import MonitorServer

from tests.support.airflow_stub import set_state
from tests.support.broken_pipeline import LAB2, broken

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


# What a page's layout breaks, measured in the browser: dates and task ids spread over more
# than one line, a page wider than the window (a table that neither fits nor scrolls), a caption not
# aligned with its table.
LAYOUT = """(() => {
  const lines = el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top))).size;
  };
  const broken = Array.from(document.querySelectorAll('.when, .task-id'))
    .filter(el => el.textContent.trim() && lines(el) > 1).map(el => el.textContent.trim());
  const captions = Array.from(document.querySelectorAll('caption')).filter(c => {
    const range = document.createRange();
    range.selectNodeContents(c);
    return Math.abs(range.getBoundingClientRect().left - c.closest('table').getBoundingClientRect().left) > 2;
  }).map(c => c.textContent.trim());
  const root = document.documentElement;
  const attention = document.querySelector('.pipelines-banner');
  return {broken, captions, page: root.scrollWidth, window: root.clientWidth,
          banner: document.querySelector('#case')?.innerText, nothing: document.querySelector('#case')?.dataset.nothing || null,
          attention: document.querySelectorAll('.pipelines-banner').length, attentionText: attention ? attention.innerText : null,
          attentionFits: attention ? attention.scrollWidth <= attention.clientWidth + 1 : null, text: document.body.innerText};
})()"""

# Each state of the latest run, and the pages that show it or say they have nothing to show for it.
PAGES_OF = {
    "success": ("/success", "/running", "/failure", "/models"),
    "gate": ("/failure", "/running"),  # not promoted
    "failed": ("/failure", "/running"),
    "running": ("/running", "/failure"),
    "no_run": ("/failure", "/running"),
    # the latest run succeeded, then a pipeline file stopped validating: its last valid version runs instead
    "broken_file": ("/success", "/failure", "/running", "/models"),
}
WIDTHS = (1400, 800)


def _history(airflow) -> None:
    """Earlier runs with the ids, dates and model facts Airflow and load_model_task really give."""
    from datetime import timedelta

    from tests.support.airflow_stub import T0, dag_run, metrics

    for n in range(1, 7):
        run_id = f"manual__2025-11-1{n}T0{n}:00:00.123456+00:00__{n}f3a9c2e" if n % 2 else f"scheduled__2025-11-1{n}T00:00:00+00:00"
        airflow.runs.insert(0, dag_run(run_id, "success" if n != 3 else "failed", started=T0 - timedelta(days=8 - n)))
        if n != 3:
            airflow.xcoms[run_id] = {
                **metrics(run_id, accuracy=0.9 + n / 200, roc_auc=0.94 + n / 200),
                "estimator": "gradient_boosting",
                "scalers": ["standard", "minmax"],
                "model_version": n,
                "promoted": n % 2 == 1,
                "champion_version": n,
            }


def _stage(airflow, state: str, broken_render: dict) -> None:
    """Put the stub Airflow in `state`, with earlier runs behind the latest."""
    if state == "broken_file":  # as the DAG file files it, from a copy of pipelines/ (tests/support/broken_pipeline.py)
        broken(airflow, broken_render)
    else:
        airflow.import_errors, airflow.dag_details = [], {}
        set_state(airflow, state)
    if state != "no_run":
        _history(airflow)
    if state in ("success", "broken_file"):  # the model facts a real run has, with a champion before it
        airflow.xcoms["manual__success_run"].update(
            scalers=["standard"],
            model_version=7,
            promoted=True,
            champion_version=7,
            previous_champion_metrics={"accuracy": 0.95, "roc_auc": 0.97},
        )


def _layout_problems(where: str, layout: dict, broken_file: bool) -> list[str]:
    checks = [
        (layout["broken"], f"broken over lines: {layout['broken']}"),
        (layout["captions"], f"captions off their table: {layout['captions']}"),
        (layout["attention"] != broken_file, f"{layout['attention']} banners of broken pipeline files"),
        (layout["attentionFits"] is False, "the banner of broken pipeline files is wider than its box"),
        (layout["page"] > layout["window"], f"the page is {layout['page']} px wide in a {layout['window']} px window"),
    ]
    return [f"{where}: {problem}" for failed, problem in checks if failed]


def test_every_page_in_every_state_is_laid_out_at_1400_and_800_px(chromium, airflow, broken_render, tmp_path):
    """Screenshots of each page in each state at both widths go to test-artifacts/; on each, measured in Chromium:
    dates and ids on one line, no page wider than the window, captions aligned with their tables, and the
    banner of a broken pipeline file on every page while one is broken, once."""
    from tests.support.devtools import Browser

    ARTIFACTS.mkdir(exist_ok=True)
    browser = Browser(chromium, tmp_path / "profile")
    problems, seen = [], {}
    try:
        for state, pages in PAGES_OF.items():
            _stage(airflow, state, broken_render)
            with MonitorServer(create_app({"AIRFLOW_URL": airflow.url, "CACHE_TTL": 0}), "127.0.0.1", 0) as server:
                for page, width in itertools.product(pages, WIDTHS):
                    browser.open(f"{server.url}{page}", width)
                    shot = ARTIFACTS / f"monitor_{state}_{page.strip('/')}_{width}.png"
                    layout = browser.evaluate(LAYOUT)
                    browser.screenshot(shot)
                    seen[(state, page, width)] = layout
                    problems += _layout_problems(f"{state} {page} at {width} px", layout, state == "broken_file")
                    assert shot.stat().st_size > 10_000
    finally:
        browser.close()
    assert problems == []
    # the pages with nothing to show say so
    assert seen[("success", "/running", 800)]["nothing"] == "running"
    assert seen[("running", "/failure", 800)]["nothing"] == "failure"
    assert "No run is running" in seen[("failed", "/running", 1400)]["banner"]
    assert "manual__failed_run, failed" in seen[("failed", "/running", 1400)]["banner"]
    assert seen[("failed", "/failure", 1400)]["nothing"] is None
    # a broken pipeline file: on every page the banner names the file, its error and what runs instead, once
    for page, width in itertools.product(PAGES_OF["broken_file"], WIDTHS):
        layout = seen[("broken_file", page, width)]
        banner, text = layout["attentionText"], layout["text"]
        assert banner.startswith("The pipeline needs attention\n"), (page, width, banner)
        assert f"{LAB2} does not validate." in banner and "'robsut'" in banner, (page, width, banner)
        assert "The last valid version runs instead: " in banner and "sha256 " in banner, (page, width, banner)
        for said in ("The pipeline needs attention", "does not validate", "The last valid version runs instead", "'robsut'"):
            assert text.count(said) == 1, (page, width, said, text)
    # the page's heading points at the banner, and does not say it again
    assert seen[("broken_file", "/success", 800)]["banner"].startswith("Latest run succeeded, but see the pipeline problem above\n")
