"""`adclick-ops models list|show`: the versions of a DAG from the command line (promote and rollback: test_registry.py)."""

from __future__ import annotations

import json

import pytest

from adclick_ops.cli import main

from tests.support.registry import train_two_versions


@pytest.fixture
def trained(pipelines, tmp_path):
    return train_two_versions(pipelines, tmp_path / "model")


def test_models_list_and_show(trained, pipelines, capsys):
    assert main(["models", "list", "--pipelines", str(pipelines), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["champion"], r["decision"]) for r in rows] == [
        (1, False, "promoted"),
        (2, True, "promoted"),
    ]
    assert main(["models", "list", "--pipelines", str(pipelines), "--dag", "Airflow_Lab2"]) == 0
    text = capsys.readouterr().out
    champion_line = next(line for line in text.splitlines() if line.startswith("* Airflow_Lab2"))
    assert champion_line.split()[2] == "2"
    assert main(["models", "show", "2", "--pipelines", str(pipelines)]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["version"] == 2 and card["champion"] is True and "text" not in card["pipeline"]
    assert main(["models", "show", "5", "--pipelines", str(pipelines)]) == 1
    assert "no version 5" in capsys.readouterr().err
    assert (
        main(
            [
                "models",
                "list",
                "--pipelines",
                str(pipelines),
                "--dag",
                "Airflow_Lab2_Flask",
            ]
        )
        == 1
    )
    assert "does not train a model" in capsys.readouterr().err
