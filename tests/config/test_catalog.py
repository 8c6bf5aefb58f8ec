"""Pipeline files: the shipped ones validate, and mistakes are caught with file, line, field and cause."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adclick_ops.cli import main
from adclick_ops.config import ConfigError, load_catalog, load_pipeline_file

from tests.support import PROJECT
from tests.support.pipeline_mistakes import LAB2, MISTAKES


def validate(capsys, *paths: Path | str) -> tuple[int, str]:
    code = main(["validate", *map(str, paths)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_shipped_pipelines_validate(capsys):
    code, out = validate(capsys, PROJECT / "pipelines")
    assert code == 0, out
    assert "Airflow_Lab2, Airflow_Lab2_Flask" in out


@pytest.fixture
def broken(tmp_path):
    """Copy pipelines/, replace `old` by `new` in airflow_lab2.yaml, return (folder, line of `new`)."""

    def make(old: str, new: str, file: str = LAB2):
        folder = tmp_path / "pipelines"
        shutil.copytree(PROJECT / "pipelines", folder)
        path = folder / file
        text = path.read_text()
        assert old in text, f"{old!r} not in {file}"
        text = text.replace(old, new, 1)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        line = text[: text.index(new)].count("\n") + 1 + (1 if new.startswith("\n") else 0)
        return folder, line

    return make


@pytest.mark.parametrize("name,old,new,field,words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_is_rejected_with_file_line_field_and_cause(capsys, broken, name, old, new, field, words):
    folder, line = broken(old, new)
    code, out = validate(capsys, folder)
    assert code == 1, out
    assert LAB2 in out
    assert words in out, out
    if field:
        assert f": {field}: " in out, out
    assert "Traceback" not in out
    # the reported line is the line to edit (or the start of the block that holds it)
    reported = int(out.split(f"{LAB2}:", 1)[1].split(":", 1)[0])
    assert abs(reported - line) <= 10, (reported, line, out)


def test_line_numbers_are_exact_for_a_scalar(capsys, broken):
    folder, line = broken("test_size: 0.3", "test_size: 7")
    _, out = validate(capsys, folder)
    assert f"{LAB2}:{line}: Airflow_Lab2.training.split.test_size:" in out


def test_every_error_of_a_file_is_reported_at_once(capsys, broken):
    folder, _ = broken("test_size: 0.3", "test_size: 2")
    path = folder / LAB2
    path.write_text(path.read_text().replace("name: logistic_regression", "name: svm").replace("ml-team@example.com", "nobody"))
    code, out = validate(capsys, folder)
    assert code == 1
    assert "test_size" in out and "'svm'" in out and "not an e-mail address" in out
    assert "3 error(s)" in out


def test_external_trigger_target_is_allowed(capsys, broken):
    folder, _ = broken("dag_id: Airflow_Lab2_Flask", "dag_id: Some_Other_Dag\n    external: true")
    code, out = validate(capsys, folder)
    assert code == 0, out


@pytest.mark.parametrize(
    "content,words",
    [
        (b"", "file is empty"),
        (b"# only a comment\n", "file is empty"),
        (b"- a\n- b\n", "found a list at the top level"),
        (b"Airflow_Lab2: \xff\xfe\n", "not valid UTF-8"),
        (b"Airflow_Lab2: 3\n", "expected a mapping of DAG settings"),
        (b"'bad id!':\n  tasks: {}\n", "is not a valid DAG id"),
    ],
)
def test_unusable_files(capsys, tmp_path, content, words):
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    code, out = validate(capsys, path)
    assert code == 1
    assert words in out and "p.yaml" in out


def test_missing_path_is_an_error(capsys, tmp_path):
    code, out = validate(capsys, tmp_path / "nope.yaml")
    assert code == 2 and "no such file" in out


def test_a_broken_file_does_not_hide_the_good_ones(tmp_path):
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    (folder / "broken.yaml").write_text("Broken_Dag:\n  tasks:\n    a:\n      operator: os.system\n")
    catalog = load_catalog(folder)
    assert set(catalog.dags) == {"Airflow_Lab2", "Airflow_Lab2_Flask"}
    assert list(catalog.errors) == [str(folder / "broken.yaml").replace(str(Path.cwd()) + "/", "")] or len(catalog.errors) == 1
    with pytest.raises(ConfigError) as info:
        catalog.raise_for_errors()
    assert "broken.yaml:4: Broken_Dag.tasks.a.operator" in str(info.value)


def test_duplicate_dag_id_across_files(tmp_path, capsys):
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    shutil.copy(folder / "airflow_lab2_flask.yaml", folder / "copy.yaml")
    code, out = validate(capsys, folder)
    assert code == 1 and "also declared in" in out


def test_defaults_file_is_validated(tmp_path, capsys):
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    (folder / "defaults.yaml").write_text("default_args:\n  owner: x\n  retrys: 2\n")
    code, out = validate(capsys, folder)
    assert code == 1 and "defaults.yaml:3: default_args.retrys: unknown field 'retrys'" in out


def test_reread_only_when_the_file_changes(tmp_path):
    path = tmp_path / "p.yaml"
    shutil.copy(PROJECT / "pipelines" / "airflow_lab2_flask.yaml", path)
    first = load_pipeline_file(path)
    assert load_pipeline_file(path) is first
    path.write_text(path.read_text().replace("port: 5555", "port: 5556"))
    second = load_pipeline_file(path)
    assert second is not first
    assert second.dags["Airflow_Lab2_Flask"].monitor.port == 5556


def imported_after(code: str) -> list[str]:
    import subprocess
    import sys

    code += "; print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'sklearn', 'pandas', 'dagfactory'}))"
    result = subprocess.run([sys.executable, "-c", "import sys; " + code], capture_output=True, text=True, cwd=PROJECT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_validate_imports_no_airflow():
    # nothing of Airflow, and no scikit-learn: the estimator parameters are checked from the generated table
    assert imported_after("from adclick_ops.cli import main; assert main(['validate']) == 0") == []


def test_reading_the_pipelines_at_parse_time_imports_nothing_heavy():
    assert imported_after("from adclick_ops.config import load_catalog; load_catalog('pipelines')") == []


@pytest.mark.parametrize(
    "model_dir,model_file,refused",
    [
        ("model", "model.sav", True),  # a copied file with its DAG renamed
        ("./model/", "model.sav", True),  # the same folder, spelled otherwise
        ("{root}/model", "model.sav", True),  # absolute
        ("model", "other.onnx", False),  # its own champion's copy beside the other
        ("model_copy", "model.sav", False),
    ],
)
def test_two_dags_keeping_their_champion_in_one_place_are_refused_naming_both(tmp_path, capsys, model_dir, model_file, refused):
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    text = (folder / "airflow_lab2.yaml").read_text()
    assert "Airflow_Lab2:" in text and "    model_dir: model\n    model_file: model.sav\n" in text
    copy = text.replace("Airflow_Lab2:", "Airflow_Lab2_Copy:", 1).replace(
        "    model_dir: model\n    model_file: model.sav\n", f"    model_dir: {model_dir}\n    model_file: {model_file}\n", 1
    )
    (folder / "zz_copy.yaml").write_text(copy.replace("{root}", str(tmp_path)))
    code, out = validate(capsys, folder)
    if refused:
        assert code == 1, out
        assert "zz_copy.yaml" in out and "Airflow_Lab2_Copy.training.model_dir" in out
        assert "DAG 'Airflow_Lab2_Copy'" in out and "DAG 'Airflow_Lab2'" in out and "airflow_lab2.yaml" in out
        assert "both keep their champion in" in out
    else:
        assert code == 0, out


OWN = ["dags", "dags/models", "./config", "adclick_ops", "schema", "pipelines", "pipelines/out", "last-good", "{root}/dags", "link_to_dags"]
NOT_OWN = ["model", "dagsx", "models/dags", "runs", "{root}/elsewhere"]


@pytest.mark.parametrize("field", ["model_dir", "artifacts_root"])
@pytest.mark.parametrize("value", OWN + NOT_OWN)
def test_outputs_in_the_projects_own_folders_are_refused(tmp_path, capsys, monkeypatch, field, value):
    """A run's outputs never land where the DAG file, the pipeline files or the code live (links followed)."""
    monkeypatch.delenv("ADCLICK_OPS_HOME", raising=False)
    monkeypatch.delenv("ADCLICK_OPS_LAST_GOOD", raising=False)
    folder = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", folder)
    (tmp_path / "dags" / "data").mkdir(parents=True)
    shutil.copy(PROJECT / "dags" / "data" / "advertising.csv", tmp_path / "dags" / "data")
    (tmp_path / "link_to_dags").symlink_to(tmp_path / "dags")
    path = folder / LAB2
    default = {"model_dir": "model", "artifacts_root": "runs"}[field]
    text = path.read_text()
    assert f"    {field}: {default}\n" in text
    path.write_text(text.replace(f"    {field}: {default}\n", f"    {field}: {value.replace('{root}', str(tmp_path))}\n", 1))
    code, out = validate(capsys, folder)
    if value in OWN:
        assert code == 1, out
        assert f"Airflow_Lab2.training.{field}: training.{field} of 'Airflow_Lab2' lies in " in out
        assert "where the project keeps its own files" in out and "Traceback" not in out
    else:
        assert code == 0, out


def test_a_file_named_alike_after_a_change_of_working_folder_is_read_afresh(tmp_path, monkeypatch):
    """The parse cache knows a file by what it is, not by a relative name: the same name in another folder, with the
    same size and modification time (a copy keeps both), is another file."""
    import os

    first, second = tmp_path / "a", tmp_path / "b"
    for folder, owner in ((first, "alice"), (second, "bobby")):
        shutil.copytree(PROJECT / "pipelines", folder / "pipelines")
        path = folder / "pipelines" / LAB2
        path.write_text(path.read_text().replace("owner: ", f"owner: {owner} #", 1))
    os.utime(second / "pipelines" / LAB2, ns=(os.stat(first / "pipelines" / LAB2).st_mtime_ns,) * 2)
    owners = []
    for folder in (first, second):
        monkeypatch.chdir(folder)
        owners.append(load_pipeline_file(f"pipelines/{LAB2}").dags["Airflow_Lab2"].default_args.owner)
    assert owners == ["alice", "bobby"]
