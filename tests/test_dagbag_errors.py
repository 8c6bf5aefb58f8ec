"""adclick_ops.dagbag_errors: broken pipeline files filed per file in a parsing DagBag, raised elsewhere."""

from __future__ import annotations

import os

import pytest

from adclick_ops import dagbag_errors
from adclick_ops.config import ConfigError, Issue


def errors() -> dict[str, ConfigError]:
    return {
        "pipelines/a.yaml": ConfigError([Issue("pipelines/a.yaml", 3, "A.tasks", "bad")]),
        "pipelines/b.yaml": ConfigError([Issue("pipelines/b.yaml", None, "", "not YAML")]),
    }


@pytest.mark.parametrize("version,tested", [("3.3.2", True), ("3.3", True), ("3.30.0", False), ("3.4.0", False), ("2.10.5", False)])
def test_tested_versions(version, tested):
    assert dagbag_errors.is_tested(version) is tested


def test_the_version_airflow_is_pinned_to_is_tested():
    import airflow

    assert dagbag_errors.is_tested(airflow.__version__)


def test_nothing_to_file_is_a_no_op(tmp_path, monkeypatch):
    """No errors: nothing raised, even where errors would be (no DagBag, an untested Airflow), and nothing filed."""
    from airflow.dag_processing.dagbag import DagBag

    assert dagbag_errors.file_import_errors({}) is None  # no DagBag on the stack, where any error is raised
    bag = DagBag(str(tmp_path), collect_dags=False)

    def parse(self) -> None:
        dagbag_errors.file_import_errors({}, notes={"pipelines/a.yaml": "runs the last good version"})

    parse(bag)
    assert bag.import_errors == {}
    monkeypatch.setattr(dagbag_errors, "airflow_version", lambda: "9.0.0")
    assert dagbag_errors.file_import_errors({}) is None  # where errors would be UnfiledPipelineErrors


def test_without_a_parsing_dagbag_every_issue_is_raised():
    with pytest.raises(ConfigError) as raised:
        dagbag_errors.file_import_errors(errors())
    assert [i.path for i in raised.value.issues] == ["pipelines/a.yaml", "pipelines/b.yaml"]
    assert not isinstance(raised.value, dagbag_errors.UnfiledPipelineErrors)


def test_on_an_untested_airflow_the_errors_are_raised_with_the_reason(monkeypatch):
    monkeypatch.setattr(dagbag_errors, "airflow_version", lambda: "9.0.0")
    with pytest.raises(dagbag_errors.UnfiledPipelineErrors) as raised:
        dagbag_errors.file_import_errors(errors())
    text = str(raised.value)
    assert text.splitlines()[0].endswith("this is Airflow 9.0.0")
    assert "pipelines/a.yaml:3: A.tasks: bad" in text and "pipelines/b.yaml: not YAML" in text


def test_inside_a_dagbag_each_file_gets_its_own_import_error(tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(tmp_path), collect_dags=False)

    def parse(self) -> None:  # the DagBag's own frame is on the stack, as during a file import
        dagbag_errors.file_import_errors(errors())

    parse(bag)
    assert set(bag.import_errors) == {os.path.abspath(p) for p in errors()}  # no bundle: absolute paths
    message = next(v for k, v in bag.import_errors.items() if k.endswith("a.yaml"))
    assert message == "ConfigError: invalid pipeline file\npipelines/a.yaml:3: A.tasks: bad"
