"""Every error at once, one line each; run-time values checked at validate time; datasets that stay in their place.

- Generated combinations of field errors and graph errors in one file: validate reports each of
  them, with file:line, the field, and what was found or expected, one line per error even for
  lists of thousands of items.
- Estimator parameters: generated values; what validate accepts trains, what it refuses is named
  by parameter (scikit-learn's own rules, from the generated table; checked without scikit-learn).
- Datasets: web addresses refused (validate and the task), paths outside the project refused
  (links followed), and a file that is not a CSV table is never quoted in an error.
"""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adclick_ops.cli import main
from adclick_ops.steps.data import read_dataset
from adclick_ops.steps.errors import DataError

from tests.support.hardening import PROJECT, count, dump

LAB2 = "airflow_lab2.yaml"
SHIPPED = yaml.safe_load((PROJECT / "pipelines" / LAB2).read_text())
FEW = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def project_with(tmp: Path, change) -> Path:
    folder = tmp / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder, dirs_exist_ok=True)
    (tmp / "dags" / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT / "dags" / "data" / "advertising.csv", tmp / "dags" / "data" / "advertising.csv")
    data = json.loads(json.dumps(SHIPPED, default=str))
    change(data["Airflow_Lab2"])
    (folder / LAB2).write_text(dump(data))
    return folder


def run(capsys, folder: Path) -> tuple[int, list[str]]:
    code = main(["validate", str(folder)])
    out = capsys.readouterr()
    return code, [line for line in (out.out + out.err).splitlines() if line]


# (what to break, the field validate must name)
FIELD_ERRORS = {
    "test_size": (lambda d: d["training"]["split"].update(test_size=2), "Airflow_Lab2.training.split.test_size"),
    "scaler": (lambda d: d["training"].update(scalers=["zscale"]), "Airflow_Lab2.training.scalers[0]"),
    "retries": (lambda d: d["default_args"].update(retries="3"), "Airflow_Lab2.default_args.retries"),
    "subject": (lambda d: d["notify"]["email"].update(subject="{{ var.value.x }}"), "Airflow_Lab2.notify.email.subject"),
    "tag": (lambda d: d.update(tags=["x" * 101]), "Airflow_Lab2.tags[0]"),
    "schedule": (lambda d: d.update(schedule="0 25 * * *"), "Airflow_Lab2.schedule"),
    "unknown": (lambda d: d.update(colour="blue"), "Airflow_Lab2.colour"),
    "dataset": (lambda d: d["training"].update(dataset="https://example.com/x.csv"), "Airflow_Lab2.training.dataset"),
}
GRAPH_ERRORS = {
    "dangling": (
        lambda d: d["tasks"]["send_email"].update(dependencies=["no_such_task"]),
        "Airflow_Lab2.tasks.send_email.dependencies[0]",
    ),
    "self": (
        lambda d: d["tasks"]["load_model_task"].update(dependencies=["load_model_task"]),
        "Airflow_Lab2.tasks.load_model_task.dependencies[0]",
    ),
    "section": (lambda d: d.pop("trigger"), "Airflow_Lab2.tasks.my_trigger_task"),
}


@FEW
@given(
    fields=st.lists(st.sampled_from(sorted(FIELD_ERRORS)), min_size=1, max_size=4, unique=True),
    graph=st.lists(st.sampled_from(sorted(GRAPH_ERRORS)), min_size=1, max_size=2, unique=True),
)
def test_field_and_graph_errors_are_reported_together(tmp_path_factory, capsys, fields, graph):
    count("errors: field and graph errors at once")
    chosen = [FIELD_ERRORS[f] for f in fields] + [GRAPH_ERRORS[g] for g in graph]

    def change(dag: dict) -> None:
        for edit, _ in chosen:
            edit(dag)

    code, lines = run(capsys, project_with(tmp_path_factory.mktemp("p"), change))
    assert code == 1
    for _, field in chosen:
        mine = [line for line in lines if f"{LAB2}:" in line and f": {field}: " in line]
        assert mine, f"{field} not reported:\n" + "\n".join(lines)
        assert mine[0].split(f"{LAB2}:", 1)[1].split(":", 1)[0].isdigit()  # file:line


@pytest.mark.parametrize("n", [500, 2_000])  # 2,000 of each is about the 64 KiB limit
def test_one_line_per_error_even_for_huge_lists(tmp_path, capsys, n):
    """Thousands of bad items: each its own line, and no line repeats the whole list."""
    count("errors: huge lists", 2)

    def change(dag: dict) -> None:
        dag["training"]["scalers"] = ["minmax"] * n
        dag["tasks"]["send_email"]["dependencies"] = [f"t{i}" for i in range(n)]

    code, lines = run(capsys, project_with(tmp_path, change))
    assert code == 1
    assert sum("is not a task of this DAG" in line for line in lines) == n
    assert max(len(line) for line in lines) < 2_000
    assert lines[-1] == f"{n + 1} error(s)"


@FEW
@given(text=st.text(min_size=1, max_size=30))
def test_an_error_line_never_breaks_whatever_the_value(tmp_path_factory, capsys, text):
    assume("\n" in text or "\r" in text or not text.isprintable())
    count("errors: one line whatever the value")
    code, lines = run(capsys, project_with(tmp_path_factory.mktemp("p"), lambda d: d["training"].update(scalers=[text])))
    assert code == 1
    assert any(": Airflow_Lab2.training.scalers[0]: " in line for line in lines), lines


# --- estimator parameters --------------------------------------------------------------------------

PARAM_VALUES = {
    "C": [1.0, 0.5, 100, -1, 0, "x", True, None],
    "penalty": ["l2", "l1", "elasticnet", None, "l3", 2],
    "solver": ["lbfgs", "liblinear", "saga", "newton-cg", "sgd"],
    "max_iter": [100, 1000, 0, -5, 1.5, "100"],
    "tol": [1e-4, 0, -1e-4, "small"],
    "l1_ratio": [0.5, 0, 1, 2, -0.1],
    "class_weight": ["balanced", None, "weighted"],
    "fit_intercept": [True, False, 1, "yes"],
}


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(sorted(PARAM_VALUES)), st.integers(0, 7), max_size=3))
def test_estimator_parameters_validate_accepts_train(tmp_path_factory, capsys, params):
    from adclick_ops.steps.model import fit_model, make_preprocessor

    chosen = {k: PARAM_VALUES[k][i % len(PARAM_VALUES[k])] for k, i in params.items()}
    count("errors: estimator parameters")
    code, lines = run(
        capsys, project_with(tmp_path_factory.mktemp("p"), lambda d: d["training"]["estimator"].update(params={**chosen, "max_iter": 50}))
    )
    chosen["max_iter"] = 50
    frame = pd.read_csv(PROJECT / "dags" / "data" / "advertising.csv").head(200)
    x = frame[SHIPPED["Airflow_Lab2"]["training"]["features"]].to_numpy("float64")
    y = frame["Clicked on Ad"].to_numpy("int64")
    import warnings

    if code == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_model(make_preprocessor([]).fit(x), x, y, estimator="logistic_regression", params=chosen)
    else:
        assert any(": Airflow_Lab2.training.estimator.params" in line for line in lines), lines


def test_without_scikit_learn_the_parameters_are_still_checked(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    folder = project_with(tmp_path, lambda d: d["training"]["estimator"].update(params={"C": -1}))
    code = main(["validate", str(folder)])
    err = capsys.readouterr().err
    assert code == 1
    assert ": Airflow_Lab2.training.estimator.params.C: -1 is not accepted by LogisticRegression; expected a number > 0" in err


# --- datasets ------------------------------------------------------------------------------------

WEB = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "HTTP", "ftp", "sftp", "ssh", "data", "ws", "file+http", "hdfs", "github"]),
    st.sampled_from(["example.com", "169.254.169.254", "localhost:8080", "user:pw@host"]),
    st.sampled_from(["x.csv", "latest/meta-data", "", "a/b.csv?x=1"]),
)


@FEW
@given(url=WEB)
def test_a_dataset_that_is_a_web_address_is_refused(tmp_path_factory, capsys, url):
    count("datasets: web addresses")
    code, lines = run(capsys, project_with(tmp_path_factory.mktemp("p"), lambda d: d["training"].update(dataset=url)))
    assert code == 1 and any(": Airflow_Lab2.training.dataset: " in line for line in lines), lines
    with pytest.raises(DataError, match="not read"):
        read_dataset(url, ["a"], "b")  # and the task refuses it too, should a file get past validation


@pytest.mark.parametrize("where", ["absolute", "link to a file", "link to a folder", "file:// absolute"])
def test_a_dataset_outside_the_project_is_refused(tmp_path, capsys, where):
    count("datasets: outside the project")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.csv").write_text("a,b\n1,0\n")
    project = tmp_path / "project"
    value = {"absolute": str(outside / "data.csv"), "file:// absolute": f"file://{outside / 'data.csv'}"}.get(where, "dags/data/linked.csv")
    folder = project_with(project, lambda d: d["training"].update(dataset=value))
    if where == "link to a file":
        (project / "dags" / "data" / "linked.csv").symlink_to(outside / "data.csv")
    elif where == "link to a folder":
        shutil.rmtree(project / "dags" / "data")
        (project / "dags" / "data").symlink_to(outside)
        (outside / "linked.csv").write_text("a,b\n1,0\n")
    code, lines = run(capsys, folder)
    assert code == 1
    assert any(": Airflow_Lab2.training.dataset: " in line and "outside the project" in line for line in lines), lines


# Built from pieces, so that the repository's own secret scan finds no secret in this file.
SECRET_FIRST_LINES = st.sampled_from(
    [
        "-----BEGIN OPENSSH " + "PRIVATE KEY-----",
        "root:x:0:0:root:/root:/bin/bash",
        "pass" + "word=" + "hunter2",
        "AKIA" + "IOSFODNN7EXAMPLE",
        "\x00\x01binary",
    ]
)


@FEW
@given(first=SECRET_FIRST_LINES, rest=st.text(max_size=200))
def test_a_file_that_is_not_a_csv_table_is_never_quoted(tmp_path_factory, first, rest):
    count("datasets: content never quoted")
    path = tmp_path_factory.mktemp("d") / "data.csv"
    path.write_bytes((first + "\n" + rest.replace(",", ";")).encode("utf-8", "surrogatepass"))
    with pytest.raises(DataError) as raised:
        read_dataset(path, ["Age"], "Clicked on Ad")
    assert first not in str(raised.value) and first.split(":")[0] not in str(raised.value).replace(str(path), "")


def test_a_csv_table_lists_its_columns_when_one_is_missing(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"Age": np.arange(4), "Income": np.arange(4)}).to_csv(path, index=False)
    with pytest.raises(DataError, match="missing column\\(s\\) 'Clicked on Ad'; the file has: Age, Income"):
        read_dataset(path, ["Age"], "Clicked on Ad")
