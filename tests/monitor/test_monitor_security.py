"""What the monitor promises about safety: escaped Airflow values, headers, read-only routes, no debug."""

from __future__ import annotations

import re

import pytest

from adclick_ops.monitor import create_app

from tests.support.airflow_stub import STATES, dag_run, metrics

EVIL = '<script>alert("x")</script>'
PAGES = ("/success", "/failure", "/no-such-page")


def test_run_id_and_note_from_airflow_show_as_text(client, airflow):
    run_id = f"manual__{EVIL}"
    airflow.runs = [dag_run(run_id, "success", note=f"note {EVIL}")]
    airflow.xcoms = {run_id: {**metrics(run_id), "estimator": EVIL, "model_path": EVIL}}
    response = client.get("/success")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script" not in html
    assert 'id="run-id">manual__&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;<' in html
    assert 'id="run-note">note &lt;script&gt;' in html
    # In the Airflow link the run id is percent-encoded, not raw markup.
    assert "/runs/manual__%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E" in html
    # JSON keeps the value as data, for a script to escape in its own context.
    assert client.get("/api/status").get_json()["run"]["run_id"] == run_id


@pytest.mark.parametrize("state", STATES)
def test_every_response_carries_the_security_headers(client_in, state):
    client = client_in(state)
    for route in ("/", "/success", "/failure", "/health", "/api/status", "/api/runs", "/static/monitor.css", "/no-such-page"):
        with client.get(route) as response:  # closes the static file's handle
            headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", route
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("state", STATES)
def test_pages_satisfy_their_content_security_policy(client_in, state):
    # The policy allows no script at all and styles only from /static: the pages must need neither.
    client = client_in(state)
    for route in PAGES:
        html = client.get(route, follow_redirects=True).get_data(as_text=True)
        assert "<script" not in html
        assert not re.search(r"\sstyle=", html)
        assert "<style" not in html
        assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            if ref.startswith("/"):
                assert ref.startswith("/static/") or not ref.endswith((".css", ".js")), ref
            else:
                assert not ref.endswith((".css", ".js")), ref  # nothing from a CDN


def test_stylesheet_is_served_from_static(client):
    with client.get("/static/monitor.css") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/css"


@pytest.mark.parametrize("route", ["/", "/success", "/failure", "/health", "/api/status", "/api/runs"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_no_route_accepts_a_change(client, route, method):
    assert client.open(route, method=method).status_code == 405


def test_debug_mode_cannot_be_turned_on(airflow):
    app = create_app({"DEBUG": True, "AIRFLOW_URL": airflow.url})
    assert app.debug is False


def test_a_bug_gives_a_plain_error_page_without_traceback(airflow):
    app = create_app({"AIRFLOW_URL": airflow.url})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "secret internals" not in html and "Traceback" not in html
    assert "Internal error of the monitor" in html
