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
