"""Classes of inputs closed by one mechanism each, with generated cases:

- file system faults on the pipelines folder and on datasets (config.paths): one line naming the path;
- dataset locations (config.locations): what validate accepts is what load_data reads;
- the trigger graph (catalog's cross-file check): no DAG triggers itself, directly or in a cycle.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick_ops.config import load_catalog
from adclick_ops.config.locations import parse_location
from adclick_ops.config.vocabulary import STORAGE_SCHEMES
from adclick_ops.steps.data import DataError, read_dataset

from tests.support import run_cli
from tests.support.hardening import PROJECT, count

LAB2_TEXT = (PROJECT / "pipelines" / "airflow_lab2.yaml").read_text()
FEATURES = ["Daily Time Spent on Site", "Age", "Area Income", "Daily Internet Usage", "Male"]

cli = run_cli  # adclick-ops in this process (tests.support.run_cli)


# --- file system faults -------------------------------------------------------------------------


def make_fault(kind: str, where: Path) -> Path:
    """A path at `where` (or near it) that shows the fault `kind`."""
    where.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return where
    if kind == "fifo":
        os.mkfifo(where)
    elif kind == "device":
        where.symlink_to("/dev/zero")
    elif kind == "link loop":
        where.symlink_to(where.name + ".other")
        (where.parent / (where.name + ".other")).symlink_to(where.name)
    elif kind == "dangling link":
        where.symlink_to(where.parent / "gone")
    elif kind == "name too long":
        return where.parent / ("n" * 300)
    elif kind == "path too long":
        return where.parent.joinpath(*["d" * 200] * 25)
    elif kind == "file under a file":
        where.write_text("x")
        return where / "inside"
    elif kind == "unreadable":
        where.mkdir()
        where.chmod(0)
    return where


FOLDER_FAULTS = ["missing", "fifo", "device", "link loop", "dangling link", "name too long", "path too long", "file under a file"]
FILE_FAULTS = [*FOLDER_FAULTS, "folder"]


def one_line_naming(err: str, path: Path) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path)[:200] in lines[0] or os.path.relpath(path)[:200] in lines[0], (path, err)


@pytest.mark.parametrize("kind", FOLDER_FAULTS)
def test_a_faulty_pipelines_folder_is_one_line_naming_it_for_every_command(tmp_path, monkeypatch, kind):
    folder = make_fault(kind, tmp_path / "pipelines")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADCLICK_OPS_PIPELINES", str(folder))
    for argv in (["validate"], ["validate", str(folder)], ["graph", "Airflow_Lab2"], ["plan", "--pipelines", str(folder)]):
        code, out, err = cli(*argv)
        count("pipelines folder fault")
        assert code == 2, (argv, code, out, err)
        assert out == ""
        one_line_naming(err, folder)


def test_an_unreadable_pipelines_folder_is_one_line():
    """As a user without the right to read it (root reads everything: the command runs as nobody then)."""
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    if drop and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: every folder is readable")
    # a folder the other user can reach (pytest's own are private to root)
    with tempfile.TemporaryDirectory(prefix="adclick-unreadable-") as scratch:
        Path(scratch).chmod(0o755)
        folder = make_fault("unreadable", Path(scratch) / "pipelines")
        script = Path(sys.executable).parent / "adclick-ops"
        for argv in (["validate", str(folder)], ["graph", "Airflow_Lab2", "--pipelines", str(folder)]):
            result = subprocess.run([*drop, str(script), *argv], capture_output=True, text=True, timeout=120, cwd=scratch)
            assert result.returncode == 2, result
            (line,) = result.stderr.strip().splitlines()
            assert line.endswith("pipelines: pipelines folder: permission denied"), line
        folder.chmod(0o755)


@pytest.mark.parametrize("with_defaults", [False, True])
def test_an_empty_pipelines_folder_is_an_error_for_validate(tmp_path, with_defaults):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a pipeline")
    if with_defaults:
        shutil.copy(PROJECT / "pipelines" / "defaults.yaml", folder)
    code, out, err = cli("validate", str(folder))
    assert code == 1 and out == ""
    assert f"{folder}: no pipeline files in this folder" in err
    assert ("defaults.yaml alone declares none" in err) is with_defaults
    code, out, _ = cli("validate", "--format", "json", str(folder))
    assert code == 1 and '"valid": false' in out


@pytest.mark.parametrize("kind", FILE_FAULTS)
def test_a_faulty_dataset_is_one_line_naming_it(tmp_path, kind):
    path = tmp_path / "data.csv"
    if kind == "folder":
        path.mkdir()
    else:
        path = make_fault(kind, path)
    with pytest.raises(DataError) as caught:
        read_dataset(str(path), FEATURES, "Clicked on Ad")
    count("dataset fault")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert "Errno" not in message and "OSError" not in message


# --- one reading of dataset locations -----------------------------------------------------------


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*[st.sampled_from([c.lower(), c.upper()]) for c in word]).map("".join)


SCHEMES = st.sampled_from(["file", *STORAGE_SCHEMES]).flatmap(any_case)
LOCATIONS = st.one_of(
    st.tuples(SCHEMES, st.sampled_from(["dags/data/advertising.csv", "bucket/key.csv", "dags/data/other.csv"])).map(
        lambda t: f"{t[0]}://{t[1]}"
    ),
    # nested schemes, in every form fsspec or urllib would read differently
    st.tuples(SCHEMES, SCHEMES, st.sampled_from(["://", "::", ":"])).map(lambda t: f"{t[0]}://{t[1]}{t[2]}bucket/x.csv"),
    st.tuples(SCHEMES, SCHEMES).map(lambda t: f"{t[0]}::{t[1]}://bucket/x.csv"),
    st.sampled_from(["http", "ftp", "HTTPS", "data", "simplecache"]).map(lambda s: f"{s}://host/x.csv"),
    st.sampled_from(["dags/data/advertising.csv", "dags/data/x://y.csv", "./dags/data/advertising.csv"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(location=LOCATIONS)
def test_validate_accepts_exactly_the_locations_load_data_reads(pipelines, location):
    """The model (validate) and the reader (load_data_task) agree on every generated location, and a
    local one that validate accepts is read from the project."""
    lab2 = pipelines / "airflow_lab2.yaml"
    lab2.write_text(LAB2_TEXT.replace("dataset: dags/data/advertising.csv", f"dataset: {json.dumps(location)}"))
    catalog = load_catalog(pipelines)
    accepted = "Airflow_Lab2" in catalog.dags
    try:
        where = parse_location(location)
    except ValueError:
        where = None
    count("dataset location")
    assert accepted == (where is not None), (location, [str(e) for e in catalog.errors.values()])
    if where is None:
        # the tasks refuse it too, with the same reason, before reading anything
        with pytest.raises(DataError, match=r"nests one address|is not read|expected \w+://"):
            read_dataset(location, FEATURES, "Clicked on Ad")
        return
    assert where.scheme == where.scheme.lower()
    dataset = catalog.dags["Airflow_Lab2"].training.dataset
    assert dataset == str(where)  # one spelling from here on
    if where.local and where.path.lstrip("./") == "dags/data/advertising.csv":
        from adclick_ops.factory import training_jobs

        job = training_jobs(catalog)["Airflow_Lab2"]
        assert len(read_dataset(job.dataset, FEATURES, "Clicked on Ad")) == 1000


def test_the_report_s_uppercase_file_uri_is_read_by_load_data(pipelines):
    lab2 = pipelines / "airflow_lab2.yaml"
    lab2.write_text(LAB2_TEXT.replace("dataset: dags/data/advertising.csv", "dataset: FILE://dags/data/advertising.csv"))
    code, out, err = cli("validate", str(pipelines))
    assert code == 0, err
    from adclick_ops.factory import training_jobs

    job = training_jobs(load_catalog(pipelines))["Airflow_Lab2"]
    assert job.dataset == str(pipelines.parent.resolve() / "dags" / "data" / "advertising.csv")
    assert len(read_dataset(job.dataset, FEATURES, "Clicked on Ad")) == 1000


# --- the trigger graph --------------------------------------------------------------------------


def dag_text(dag_id: str, target: str) -> str:
    body = LAB2_TEXT.split("\n", 1)[1]  # without the schema comment
    body = body.replace("Airflow_Lab2:\n", f"{dag_id}:\n", 1).replace("dag_id: Airflow_Lab2_Flask", f"dag_id: {target}")
    assert body.count(f"dag_id: {target}") == 1
    # each DAG keeps its own champion (validate refuses two DAGs sharing one)
    assert body.count("model_dir: model\n") == 1
    return body.replace("model_dir: model\n", f"model_dir: model/{dag_id}\n")


def on_cycles(targets: dict[str, str]) -> set[str]:
    """The DAGs a walk of triggers comes back to: f^k(d) == d for some k."""
    found = set()
    for dag in targets:
        node = targets.get(dag)
        for _ in range(len(targets)):
            if node == dag:
                found.add(dag)
                break
            node = targets.get(node)
    return found


@pytest.mark.parametrize("seed", range(12))
def test_trigger_cycles_across_files_are_refused_and_nothing_else(tmp_path, seed):
    rng = random.Random(seed)
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    (folder / "airflow_lab2.yaml").unlink()
    dags = [f"Dag_{i}" for i in range(rng.randint(1, 7))]
    # each DAG triggers one of the others, itself, or the monitor DAG (which triggers nothing)
    targets = {d: rng.choice([*dags, "Airflow_Lab2_Flask"]) for d in dags}
    files: dict[str, list[str]] = {}
    for d in dags:
        files.setdefault(f"f{rng.randint(0, 2)}.yaml", []).append(dag_text(d, targets[d]))
    for name, bodies in files.items():
        (folder / name).write_text("\n".join(bodies))
    expected = on_cycles(targets)
    code, out, err = cli("validate", "--format", "json", str(folder))
    report = yaml.safe_load(out)
    count("trigger graph")
    flagged = {e["field"].split(".")[0] for e in report["errors"] if e["field"].endswith("trigger.dag_id")}
    assert flagged == expected, (targets, report["errors"])
    assert code == (1 if expected else 0)
    for e in report["errors"]:
        assert "triggers itself" in e["message"] or "trigger cycle:" in e["message"]
        assert e["line"] is not None
