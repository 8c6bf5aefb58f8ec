"""The generated bad files again, through real processes: the `adclick-ops validate` command, and
Airflow's DagBag (as the DAG processor parses dags/) with the bad files beside the good ones."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hardening import test_hardening_yaml as gen
from tests.support import parse_dags
from tests.support.hardening import count

PROCESS = settings(
    max_examples=8,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
# one file per kind, each on its own: cross-file kinds would also (rightly) flag the good files
SINGLE_FILE = (
    st.sampled_from(sorted(gen.KINDS))
    .flatmap(lambda kind: gen.KINDS[kind])
    .filter(lambda case: case.error_file in case.files and not case.extra)
)


@PROCESS
@given(case=SINGLE_FILE)
def test_validate_command_in_a_subprocess(case, tmp_path_factory):
    folder = gen.write(case, tmp_path_factory.mktemp("cli"))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "adclick-ops"), "validate", str(folder)], capture_output=True, text=True, timeout=120
    )
    count("validate: real subprocess")
    gen.check(case, result.returncode, result.stdout + result.stderr, folder)


def renamed(content: bytes, n: int) -> bytes:
    """The mutant's DAG ids made its own, so that it cannot clash with the good files."""
    content = re.sub(rb"(?m)^Airflow_Lab2_Flask:", b"Mutant_Flask_%d:" % n, content)
    return re.sub(rb"(?m)^Airflow_Lab2:", b"Mutant_Lab2_%d:" % n, content)


@settings(PROCESS, max_examples=2)
@given(cases=st.lists(SINGLE_FILE, min_size=6, max_size=6))
def test_dagbag_reports_each_bad_file_as_its_own_import_error(cases, airflow_home, pipelines):
    names = []
    for n, case in enumerate(cases):
        name = f"mutant_{n}.yaml"
        (pipelines / name).write_bytes(renamed(case.files[case.error_file], n))
        names.append(name)
    try:
        report = parse_dags(airflow_home())
        count("dagbag: bad files beside the good ones", len(cases))
        assert set(report["dags"]) == {"Airflow_Lab2", "Airflow_Lab2_Flask"}, report["import_errors"]
        errors = report["import_errors"]
        assert sorted(Path(k).name for k in errors) == sorted(names), errors
        for key, message in errors.items():
            assert f"{Path(key).name}" in message and "Traceback" not in message, message
    finally:
        for name in names:
            (pipelines / name).unlink()


@pytest.mark.parametrize(
    "files",
    [
        {
            "broken_date.yaml": "Broken:\n  start_date: 2024-02-30\n  tasks:\n    t:\n      operator: airflow.providers.standard.operators.empty.EmptyOperator\n"
        },
        {
            "numbered.yaml": "1:\n  tasks:\n    t:\n      operator: airflow.providers.standard.operators.empty.EmptyOperator\n",
            "lost_trigger.yaml": gen.SHIPPED_TEXT[gen.LAB2]
            .replace("Airflow_Lab2:", "Other:", 1)
            .replace("dag_id: Airflow_Lab2_Flask", "dag_id: Nowhere"),
        },
    ],
    ids=["impossible date", "numeric DAG id and a dangling trigger"],
)
def test_dagbag_bad_files_that_found_bugs_stay_their_own_import_errors(files, airflow_home, pipelines):
    """Found bugs: these files raise out of the loader, so dags/adclick_dags.py fails and every DAG vanishes."""
    for name, text in files.items():
        (pipelines / name).write_text(text)
    report = parse_dags(airflow_home())
    count("dagbag: bad files beside the good ones", len(files))
    assert set(report["dags"]) == {"Airflow_Lab2", "Airflow_Lab2_Flask"}, report["import_errors"]
    assert sorted(Path(k).name for k in report["import_errors"]) == sorted(files)
