"""docs/monitor.md lists the monitor's routes as the app has them: every rule of the URL map, with its methods."""

from __future__ import annotations

import re

from adclick_ops.monitor import create_app

from tests.support import PROJECT

ROW = re.compile(r"^\| `(?P<route>[^`]+)` \| (?P<methods>[A-Z, ]+) \| .+ \|$")


def documented_routes(text: str) -> dict[str, frozenset[str]]:
    table = text[text.index("| Route | Methods | What it answers |") :].split("\n\n", 1)[0]
    routes: dict[str, frozenset[str]] = {}
    for line in table.splitlines()[2:]:
        match = ROW.match(line)
        assert match, f"docs/monitor.md: a row of the routes table is not `| \\`route\\` | METHODS | text |`: {line[:120]}"
        assert match["route"] not in routes, f"docs/monitor.md lists {match['route']} twice"
        routes[match["route"]] = frozenset(m.strip() for m in match["methods"].split(","))
    return routes


def test_the_routes_in_docs_monitor_md_are_the_apps_url_map(airflow):
    app = create_app({"AIRFLOW_URL": airflow.url})
    actual = {rule.rule: frozenset(rule.methods - {"OPTIONS"}) for rule in app.url_map.iter_rules()}
    assert documented_routes((PROJECT / "docs" / "monitor.md").read_text()) == actual


def test_a_route_missing_from_the_docs_or_a_wrong_method_is_seen():
    text = (PROJECT / "docs" / "monitor.md").read_text()
    routes = documented_routes(text)
    assert routes["/api/predict"] == {"POST"} and routes["/health"] == {"GET", "HEAD"}
    without = documented_routes(re.sub(r"^\| `/api/predict` .*\n", "", text, flags=re.M))
    assert "/api/predict" not in without


def _said(text: str, pattern: str) -> str:
    found = re.search(pattern, re.sub(r"\s+", " ", text))
    assert found, f"docs/monitor.md does not say {pattern!r}"
    return found[1]


def test_the_cache_control_in_docs_monitor_md_is_what_the_app_sends(airflow):
    """Pages no-store; static files no-cache (revalidated: they change with the installed version); the icon a day."""
    text = (PROJECT / "docs" / "monitor.md").read_text()
    client = create_app({"AIRFLOW_URL": airflow.url}).test_client()
    sent = {}
    for path in ("/no-such-page", "/static/monitor.css", "/favicon.ico"):
        with client.get(path) as response:
            sent[path] = ", ".join(response.headers.getlist("Cache-Control"))
    said = {
        "/no-such-page": _said(text, r"`Cache-Control: ([^`]+)` on every answer but the static files and the icon"),
        "/static/monitor.css": _said(text, r"The static files \(`/static/\.\.\.`\) carry `Cache-Control: ([^`]+)`"),
        "/favicon.ico": _said(text, r"`/favicon\.ico` may be cached for a day \(`Cache-Control: ([^`]+)`\)"),
    }
    assert said == sent, f"docs/monitor.md says {said}; the app sends {sent}"
