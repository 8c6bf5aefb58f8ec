"""`adclick-ops`: validate pipeline files, write their schema, show a DAG, run the pipeline, trigger and follow
runs, run Airflow's CLI with the embedded environment, serve the monitor, manage model versions and score files."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from adclick_ops.config import ConfigError, pipelines_dir
from adclick_ops.config.catalog import PACKAGE_PROJECT
from adclick_ops.config.paths import PathFault
from adclick_ops.config.vocabulary import (
    AIRFLOW_PORT,
    AIRFLOW_URL,
    ENV_AIRFLOW_URL,
    ENV_PIPELINES,
    MONITOR_HOST,
    MONITOR_PORT,
    TRAINING_DAG_ID,
)

SCHEMA_DIR = PACKAGE_PROJECT / "schema"
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
RUNTIME_MODULES = {"airflow", "dagfactory", "flask", "waitress", "gunicorn", "requests", "sklearn", "pandas", "numpy", "skops", "s3fs"}
RUNTIME_MODULES |= {"onnx", "onnxruntime", "skl2onnx"}  # model files: converted, checked and scored
EXIT_CODES = "exit status: 0 valid, 1 invalid pipelines, 2 usage or I/O error"


def _default_pipelines() -> Path:
    """$ADCLICK_OPS_PIPELINES, else ./pipelines when there is one (a CI job in a user's repository),
    else the project's own folder."""
    if os.environ.get(ENV_PIPELINES) or not Path("pipelines").is_dir():
        return pipelines_dir()
    return Path("pipelines")


HOOK_FILES = r"(^|/)pipelines/[^/]+\.ya?ml$"  # the `files` of .pre-commit-hooks.yaml


def _hook_folders(named: list[str], pattern: str) -> list[str]:
    """The folders a commit touches: those of the files pre-commit passes (changed or added), and those
    of the pipeline files it deletes, which pre-commit never passes (git is asked for them)."""
    import re
    import subprocess

    folders = [os.path.dirname(p) or "." for p in named]
    try:
        staged = subprocess.run(
            # --no-renames: a file moved away shows as deleted where it was
            ["git", "diff", "--cached", "--name-only", "--no-renames", "--diff-filter=D", "-z"],
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout.decode("utf-8", "surrogateescape")
    except (OSError, subprocess.SubprocessError):
        staged = ""  # not run by pre-commit inside a repository: the named files are all there is
    matches = re.compile(pattern).search
    folders += [os.path.dirname(p) or "." for p in staged.split("\0") if p and matches(p)]
    return [f for f in dict.fromkeys(folders) if os.path.isdir(f)]


def cmd_validate(args: argparse.Namespace) -> int:
    from adclick_ops.config import report

    paths = args.paths or [str(_default_pipelines())]
    if args.pre_commit:
        paths = _hook_folders(args.paths, args.files_pattern)
        if not paths:
            return EXIT_OK  # no pipeline file changed, added or deleted
    try:
        result = report.check(paths)
    except report.UsageError as exc:
        out, err = report.usage_error(str(exc), args.format)
        code = EXIT_USAGE
    else:
        out, err = report.render(result, args.format)
        code = EXIT_OK if result.valid else EXIT_INVALID
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def cmd_plan(args: argparse.Namespace) -> int:
    from adclick_ops import plan

    try:
        result = plan.plan(Path(args.pipelines) if args.pipelines else _default_pipelines(), args.base)
    except plan.PlanError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(plan.render(result, args.format))
    # like `diff`: 1 when there is something to review (a change, or a working tree that does not
    # validate); 2 (above, and the error boundary in main) when no plan could be computed
    return EXIT_INVALID if result.changed or result.new.issues else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from adclick_ops.config.schema import defaults_schema, pipeline_schema

    out = Path(args.output)
    targets = {out / "pipeline.schema.json": pipeline_schema(), out / "defaults.schema.json": defaults_schema()}
    stale = []
    for path, schema in targets.items():
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `adclick-ops schema`", file=sys.stderr)
        return 1
    return 0


def _schedule_text(dag: Any) -> str:
    """The schedule as the pipeline file wrote it, else what the SDK timetable holds."""
    if isinstance(dag.schedule, str):
        return dag.schedule
    if dag.schedule is None:
        return "none: triggered only"
    return getattr(dag.timetable, "expression", None) or type(dag.timetable).__name__


def _graph_lines(dag_id: str, schedule: str, tasks: list[tuple[str, str, str, list[str]]]) -> list[str]:
    """The graph as text: (task id, operator class, trigger rule, downstream ids) in a topological order."""
    lines = [f"{dag_id}  (schedule: {schedule})"]
    for task_id, operator, rule, down in tasks:
        shown = f"  [trigger_rule={rule}]" if rule != "all_success" else ""
        lines.append(f"  {task_id} ({operator}){shown}" + (f" -> {', '.join(sorted(down))}" if down else ""))
    return lines


def _declared_graph(dag_id: str, pipelines: str | None) -> list[str] | int:
    """The graph that dag-factory renders, read from the validated pipeline files alone (no Airflow import).

    tests/test_dags.py checks that it matches the DAG Airflow builds, line for line, for the shipped
    pipelines and for generated graphs.
    """
    from adclick_ops.config import load_catalog

    catalog = load_catalog(pipelines_dir(pipelines))
    for f in catalog.files:
        dag = f.dags.get(dag_id)
        if dag is None:
            continue
        downstream: dict[str, list[str]] = {task_id: [] for task_id in dag.tasks}
        for task_id, spec in dag.tasks.items():
            for up in spec.dependencies or ():
                downstream[up].append(task_id)
        # Kahn's algorithm; ties in declaration order
        waiting = {task_id: len(spec.dependencies or ()) for task_id, spec in dag.tasks.items()}
        ready = [task_id for task_id, n in waiting.items() if n == 0]
        order: list[str] = []
        while ready:
            task_id = ready.pop(0)
            order.append(task_id)
            for down in downstream[task_id]:
                waiting[down] -= 1
                if waiting[down] == 0:
                    ready.append(down)
        rows = [(t, dag.tasks[t].operator.rsplit(".", 1)[-1], dag.tasks[t].trigger_rule or "all_success", downstream[t]) for t in order]
        return _graph_lines(dag_id, dag.schedule if dag.schedule is not None else "none: triggered only", rows)
    broken = [str(error) for error in catalog.errors.values() if dag_id in error.declared]
    if broken:
        print("\n".join(broken), file=sys.stderr)
        return 1
    print(f"DAG {dag_id!r} not found; declared: {', '.join(sorted(catalog.dags)) or 'none'}", file=sys.stderr)
    return 1


def _rendered_graph(dag_id: str, pipelines: str | None) -> list[str] | int:
    """The graph of the DAG as dag-factory and Airflow build it."""
    from adclick_ops.render import render

    rendered: dict = {}
    try:
        # Airflow 3.3 logs to stdout; while it renders, stdout is stderr, so stdout holds the graph alone.
        with contextlib.redirect_stdout(sys.stderr):
            render(rendered, pipelines)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    dag = rendered.get(dag_id)
    if dag is None:
        print(f"DAG {dag_id!r} not found; declared: {', '.join(sorted(rendered)) or 'none'}", file=sys.stderr)
        return 1
    rows = [
        (t.task_id, type(t).__name__, getattr(t.trigger_rule, "value", str(t.trigger_rule)), list(t.downstream_task_ids))
        for t in dag.topological_sort()
    ]
    return _graph_lines(dag.dag_id, _schedule_text(dag), rows)


def cmd_graph(args: argparse.Namespace) -> int:
    try:
        lines = _rendered_graph(args.dag_id, args.pipelines) if args.airflow else _declared_graph(args.dag_id, args.pipelines)
    except PathFault as exc:  # no folder to read: an I/O error, not an invalid pipeline
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if isinstance(lines, int):
        return lines
    print("\n".join(lines))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from adclick_ops.embedded.run import run_forever, run_once

    return run_once(Path(args.airflow_home)) if args.once else run_forever(Path(args.airflow_home), args.port)


def cmd_trigger(args: argparse.Namespace) -> int:
    from adclick_ops.trigger import EXIT_NOT_TRIGGERED, TriggerError, locate, parse_conf, trigger_run

    if not args.timeout > 0:  # also NaN
        print(f"adclick-ops trigger: --timeout must be a number of seconds above 0, got {args.timeout:g}", file=sys.stderr)
        return EXIT_NOT_TRIGGERED
    try:
        conf = parse_conf(args.conf)
        return trigger_run(args.dag_id, conf, args.wait, locate(Path(args.airflow_home), args.airflow_url), args.timeout)
    except TriggerError as exc:
        print(f"adclick-ops trigger: {exc}", file=sys.stderr)
        return EXIT_NOT_TRIGGERED


def cmd_airflow(args: argparse.Namespace) -> int:
    """Airflow's own CLI with the environment of the embedded Airflow (its home, settings and, while it runs, its port)."""
    import shutil

    from adclick_ops.embedded.home import read_running, set_aside_config
    from adclick_ops.embedded.stack import airflow_env

    home = Path(args.airflow_home).resolve()
    kept = set_aside_config(home) if home.is_dir() else None
    if kept is not None:  # Airflow's defaults there are not what runs; the note of the settings takes its place
        print(f"adclick-ops airflow: {home / 'airflow.cfg'} is kept as {kept.name}", file=sys.stderr)
    running = read_running(home)
    env = airflow_env(home, api_port=running.api_port if running else AIRFLOW_PORT)
    if running is not None:
        env.update(running.env)
    exe = shutil.which("airflow", path=env["PATH"]) or "airflow"
    sys.stdout.flush()
    os.execvpe(exe, [exe, *args.args], env)
    return EXIT_USAGE  # not reached: exec replaces this process


def cmd_monitor(args: argparse.Namespace) -> int:
    from adclick_ops.monitor.server import MonitorPortError, serve

    if not 0 <= args.port <= 65535:
        print(f"adclick-ops monitor: --port must be from 0 to 65535, got {args.port}", file=sys.stderr)
        return EXIT_USAGE
    try:
        serve(host=args.host, port=args.port, airflow_url=args.airflow_url, dag_id=args.dag_id)
    except MonitorPortError as exc:
        # one line, no traceback: the port is taken (or the host cannot be bound)
        print(f"adclick-ops monitor: {exc}; stop that program or choose another --port", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # a monitor setting from the environment that is not a number
        print(f"adclick-ops monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_estimator_rules(args: argparse.Namespace) -> int:
    from adclick_ops.config.estimator_rules import RULES_FILE
    from adclick_ops.steps.params import constraint_table

    text = json.dumps(constraint_table(), indent=2, sort_keys=True) + "\n"
    path = Path(args.output) if args.output else RULES_FILE
    if args.check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is out of date for the installed scikit-learn; run `adclick-ops estimator-rules`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    from adclick_ops.config.reference import render_reference

    text = render_reference()
    path = Path(args.output)
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is out of date; run `adclick-ops reference`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


class _Parser(argparse.ArgumentParser):
    """A usage error is one line too, naming the command and pointing at its --help (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given the arguments, only of what they can name.

    The commands of the registry and of the pipeline watcher are defined in their modules, which
    import the registry and smtplib/ssl: they are added unless the first argument names one of the
    commands defined here, so that `validate` or `plan` imports neither.
    """
    from adclick_ops.config.report import FORMATS as VALIDATE_FORMATS
    from adclick_ops.plan import FORMATS as PLAN_FORMATS

    parser = _Parser(prog="adclick-ops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser(
        "validate",
        help="check pipeline files; exit 1 with every error",
        epilog=EXIT_CODES,
        description="Check pipeline files. A named file is checked together with the rest of its folder, "
        "so references between files resolve; the errors reported are those of the named files and "
        "the cross-file errors they cause.",
    )
    p.add_argument("paths", nargs="*", help="pipeline files or folders (default: pipelines/)")
    p.add_argument(
        "--format",
        choices=VALIDATE_FORMATS,
        default="text",
        help="text (default), json (one object on stdout) or github (workflow-command annotations)",
    )
    p.add_argument(
        "--pre-commit",
        action="store_true",
        help="as the pre-commit hook: check the whole folder of every pipeline file the commit changes, adds or deletes "
        "(deletions are read from git's index); nothing when it touches none",
    )
    p.add_argument(
        "--files-pattern",
        default=HOOK_FILES,
        metavar="REGEX",
        help=f"with --pre-commit: which deleted files are pipeline files (default: {HOOK_FILES}, the hook's `files`)",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "plan",
        help="what the pipelines of the working tree change against a git revision",
        epilog="exit status: 0 no changes, 1 plan shown: changes, or the working tree's pipelines are invalid; "
        "2 no plan: usage, git or I/O error (stdout empty)",
    )
    p.add_argument("--base", default="HEAD", help="git revision to compare with (default: HEAD)")
    p.add_argument("--format", choices=PLAN_FORMATS, default="text", help="text (default), json, or markdown for a pull-request comment")
    p.add_argument("--pipelines", default=None, help="pipelines folder (default: ./pipelines)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="write the JSON Schema of pipeline files")
    p.add_argument("--output", default=str(SCHEMA_DIR), help="folder to write to (default: schema/)")
    p.add_argument("--check", action="store_true", help="exit 1 if the files there are out of date")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "estimator-rules",
        help="write the table of the estimators' parameter constraints from the installed scikit-learn",
        description="Read each allowed estimator's parameter constraints and defaults from scikit-learn and write "
        "adclick_ops/config/estimator_rules.json, which `validate` and the JSON Schema use (validate never imports scikit-learn).",
    )
    p.add_argument("--output", default=None, help="file to write (default: adclick_ops/config/estimator_rules.json)")
    p.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    p.set_defaults(func=cmd_estimator_rules)

    p = sub.add_parser("graph", help="print the task graph of a DAG, as dag-factory renders it from the pipeline files")
    p.add_argument("dag_id")
    p.add_argument("--pipelines", default=None, help="pipelines folder (default: pipelines/)")
    p.add_argument(
        "--airflow",
        action="store_true",
        help="build the DAG with dag-factory and Airflow and print what they built (needs the runtime; about 2 s more)",
    )
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("run", help=f"run {TRAINING_DAG_ID} on the embedded Airflow (SQLite, LocalExecutor)")
    p.add_argument("--once", action="store_true", help="one headless run (airflow dags test); exit 1 if a task failed")
    p.add_argument("--airflow-home", default=str(PACKAGE_PROJECT / ".airflow"), help="Airflow home (default: .airflow/)")
    p.add_argument("--port", type=int, default=AIRFLOW_PORT, help="port of the Airflow API server and UI")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "trigger",
        help="start a run of a DAG on the running Airflow (the one `make run` keeps up, by default); --wait follows it",
        epilog="exit status: 0 the run succeeded (without --wait: it was triggered), 1 it failed or could not be followed "
        "to its end, 2 it could not be triggered",
        description="Trigger a run through the Airflow REST API. Without --airflow-url, the embedded Airflow that "
        "`adclick-ops run` (`make run`) keeps up for --airflow-home is used, on its port and with its login. "
        f"With --airflow-url (or ${ENV_AIRFLOW_URL}), the credentials are those of the monitor: "
        "$ADCLICK_AIRFLOW_USER and $ADCLICK_AIRFLOW_PASSWORD (default airflow/airflow).",
    )
    p.add_argument("dag_id", nargs="?", default=TRAINING_DAG_ID, help=f"the DAG to run (default: {TRAINING_DAG_ID})")
    p.add_argument("--conf", default=None, help='the run\'s conf, a JSON object, e.g. \'{"reason": "new data"}\'')
    p.add_argument("--wait", action="store_true", help="follow the run: each task's state, failures with their log, then the summary")
    p.add_argument("--timeout", type=float, default=1800, help="seconds --wait follows the run at most (default: 1800)")
    p.add_argument("--airflow-home", default=str(PACKAGE_PROJECT / ".airflow"), help="home of the embedded Airflow (default: .airflow/)")
    p.add_argument("--airflow-url", default=None, help="another Airflow's API server, e.g. http://airflow.example:8080")
    p.set_defaults(func=cmd_trigger)

    p = sub.add_parser(
        "airflow",
        help="Airflow's own CLI with the embedded Airflow's environment, e.g. `adclick-ops airflow dags list-runs Airflow_Lab2`",
        description="Run `airflow ARGS...` with AIRFLOW_HOME and every setting of the embedded Airflow "
        "(config/embedded.env), and while `make run` is up, its port and SMTP server.",
    )
    p.add_argument("--airflow-home", default=str(PACKAGE_PROJECT / ".airflow"), help="home of the embedded Airflow (default: .airflow/)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the arguments of `airflow`")
    p.set_defaults(func=cmd_airflow)

    p = sub.add_parser("monitor", help="serve the Flask monitor (production WSGI server)")
    p.add_argument("--host", default=MONITOR_HOST)
    p.add_argument("--port", type=int, default=MONITOR_PORT)
    p.add_argument("--airflow-url", default=AIRFLOW_URL)
    p.add_argument("--dag-id", default=TRAINING_DAG_ID)
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("reference", help="write docs/configuration.md from the models")
    p.add_argument("--output", default=str(PACKAGE_PROJECT / "docs" / "configuration.md"))
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_reference)

    if argv and argv[0] in sub.choices:
        return parser
    # model lifecycle: models list|show|promote|rollback, predict
    from adclick_ops.registry.commands import add_commands

    add_commands(sub)
    # pipeline files breaking and healing: watch-pipelines
    from adclick_ops.pipeline_watch import add_command

    add_command(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Every command's one error boundary: whatever fails, one line on stderr and an exit status, never a traceback.

    A script (a CI step) can trust the status: 2 means that the command could not do its job, never
    "changes" or "invalid". ADCLICK_OPS_DEBUG=1 lets an unexpected error through with its traceback.
    """
    args = build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        # validate, plan and schema run on the core install; the other commands need the extra
        if (exc.name or "").split(".")[0] not in RUNTIME_MODULES:
            return _unexpected(args.command, exc)
        print(
            f"adclick-ops {args.command} needs {exc.name}, which is not installed; "
            "install the runtime stack with: pip install 'adclick-ops[airflow]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except ConfigError as exc:  # a pipelines folder or file that cannot be read
        print(f"adclick-ops {args.command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        where = f" {exc.filename}:" if exc.filename else ""
        from adclick_ops.config.paths import os_problem

        print(f"adclick-ops {args.command}:{where} {os_problem(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        return _unexpected(args.command, exc)


def _unexpected(command: str, exc: Exception) -> int:
    if os.environ.get("ADCLICK_OPS_DEBUG"):
        raise exc
    print(f"adclick-ops {command}: failed: {_one_line(exc)} (ADCLICK_OPS_DEBUG=1 shows where)", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
