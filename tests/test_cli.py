"""adclick_ops.cli: the commands' parser and their one error boundary (one line on stderr and an exit status, never a
traceback); `graph`. Each command's own behaviour is tested with its module (validate: tests/config/test_report.py)."""

from __future__ import annotations

import errno

import pytest

from adclick_ops import cli

from tests.support import PROJECT, run_cli

COMMANDS = (
    "validate",
    "plan",
    "schema",
    "graph",
    "run",
    "trigger",
    "airflow",
    "monitor",
    "reference",
    "models",
    "predict",
    "watch-pipelines",
)


def test_the_help_lists_every_command():
    code, out, _ = run_cli("--help")
    assert code == 0
    assert all(f"    {command}" in out for command in COMMANDS)


@pytest.mark.parametrize(
    "args,line",
    [
        ((), "adclick-ops: the following arguments are required: command (see adclick-ops --help)"),
        (("nope",), "adclick-ops: argument command: invalid choice: 'nope' (choose from "),
        (("validate", "--format"), "adclick-ops validate: argument --format: expected one argument (see adclick-ops validate --help)"),
        (("graph",), "adclick-ops graph: the following arguments are required: dag_id (see adclick-ops graph --help)"),
    ],
)
def test_a_usage_error_is_one_line_pointing_at_the_commands_help(args, line):
    code, out, err = run_cli(*args)
    assert code == cli.EXIT_USAGE and out == ""
    assert err.startswith(line) and err.count("\n") == 1


def failing_schema(monkeypatch, exc: BaseException) -> None:
    def fail(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_schema", fail)


@pytest.mark.parametrize(
    "exc,status,line",
    [
        (
            RuntimeError("boom\n  on two lines"),
            2,
            "adclick-ops schema: failed: RuntimeError: boom on two lines (ADCLICK_OPS_DEBUG=1 shows where)",
        ),
        (RuntimeError(), 2, "adclick-ops schema: failed: RuntimeError (ADCLICK_OPS_DEBUG=1 shows where)"),
        (PermissionError(errno.EACCES, "Permission denied", "/srv/schema"), 2, "adclick-ops schema: /srv/schema: permission denied"),
        (
            ModuleNotFoundError("No module named 'onnx'", name="onnx"),
            2,
            "adclick-ops schema needs onnx, which is not installed; install the runtime stack with: pip install 'adclick-ops[airflow]'",
        ),
        (
            ModuleNotFoundError("No module named 'nothere'", name="nothere"),
            2,
            "adclick-ops schema: failed: ModuleNotFoundError: No module named 'nothere' (ADCLICK_OPS_DEBUG=1 shows where)",
        ),
        (KeyboardInterrupt(), 130, ""),
    ],
    ids=["unexpected", "unexpected without text", "os error", "runtime missing", "other module missing", "interrupted"],
)
def test_whatever_fails_is_one_line_and_an_exit_status(monkeypatch, exc, status, line):
    monkeypatch.delenv("ADCLICK_OPS_DEBUG", raising=False)
    failing_schema(monkeypatch, exc)
    code, out, err = run_cli("schema")
    assert code == status and out == ""
    assert err == (f"{line}\n" if line else "")


def test_a_pipelines_folder_that_cannot_be_read_is_a_usage_error_in_one_line(tmp_path):
    from adclick_ops.config.paths import PathFault

    code, _, err = run_cli("graph", "Airflow_Lab2", "--pipelines", tmp_path / "none")
    assert code == cli.EXIT_USAGE
    assert err == f"{PathFault(tmp_path / 'none', 'pipelines folder: not found')}\n"


def test_debug_lets_an_unexpected_error_through_with_its_traceback(monkeypatch):
    monkeypatch.setenv("ADCLICK_OPS_DEBUG", "1")
    failing_schema(monkeypatch, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["schema"])


def test_graph_shows_the_declared_tasks_in_order_with_their_downstream():
    code, out, _ = run_cli("graph", "Airflow_Lab2", "--pipelines", PROJECT / "pipelines")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Airflow_Lab2  (schedule: @daily)"
    assert "  load_model_task (PythonOperator) -> my_trigger_task, send_email" in lines
    assert "  my_trigger_task (TriggerDagRunOperator)  [trigger_rule=all_done]" in lines


def test_graph_of_an_unknown_dag_names_the_declared_ones():
    code, out, err = run_cli("graph", "Nope", "--pipelines", PROJECT / "pipelines")
    assert (code, out) == (1, "")
    assert err.strip().endswith("DAG 'Nope' not found; declared: Airflow_Lab2, Airflow_Lab2_Flask")
