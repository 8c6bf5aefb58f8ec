"""`adclick-ops models list|show|promote|rollback|check|migrate` and `adclick-ops predict`: the registry from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from adclick_ops.registry.registry import RETRAINED, Registry, RegistryError, run_decisions


def _registries(dag_id: str | None, pipelines: str | None) -> list[Registry]:
    from adclick_ops.registry.locate import registries, registry_for

    if dag_id is not None:
        return [registry_for(dag_id, pipelines)]
    return list(registries(pipelines).values())


def version_rows(registry: Registry) -> list[dict[str, Any]]:
    """One summary per version: metrics, the run's decision, and whether it serves now."""
    state, _ = registry.state()
    decisions = run_decisions(state["events"])
    rows = []
    for card in registry.cards():
        number = card["version"]
        decision = decisions.get(number)
        metrics = card.get("metrics", {})
        model = card.get("model", {})
        rows.append(
            {
                "dag_id": registry.dag_id,
                "version": number,
                "champion": number == state["champion"],
                "created_at": card.get("created_at"),
                "run_id": card.get("run_id"),
                "estimator": model.get("estimator"),
                "params": model.get("params"),
                "features": model.get("features"),
                "scalers": model.get("scalers"),
                "split": model.get("split"),
                "retrained_by": [e["run_id"] for e in state["events"] if e["action"] == RETRAINED and e["version"] == number],
                "accuracy": metrics.get("accuracy"),
                "roc_auc": metrics.get("roc_auc"),
                "f1": metrics.get("f1"),
                "decision": None if decision is None else decision["action"],
                "reason": None if decision is None else decision["reason"],
            }
        )
    return rows


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))


def cmd_list(args: argparse.Namespace) -> int:
    rows = [row for registry in _registries(args.dag, args.pipelines) for row in version_rows(registry)]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no model version yet")
        return 0
    print(f"{'':2}{'DAG':<20} {'VERSION':>7}  {'CREATED':<25} {'ESTIMATOR':<20} {'ACCURACY':>8} {'ROC AUC':>8}  DECISION")
    for row in rows:
        mark = "* " if row["champion"] else "  "
        decision = row["reason"] or "(no decision recorded)"
        print(
            f"{mark}{row['dag_id']:<20} {row['version']:>7}  {row['created_at'] or '-':<25} {row['estimator'] or '-':<20} "
            f"{_fmt(row['accuracy']):>8} {_fmt(row['roc_auc']):>8}  {decision}"
        )
    print("* the champion, which serves predictions")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from adclick_ops.registry.locate import registry_for

    registry = registry_for(args.dag, args.pipelines)
    card = registry.card(args.version)
    card["champion"] = registry.champion() == args.version
    card["history"] = [e for e in registry.history() if e["version"] == args.version or e.get("from") == args.version]
    if not args.with_pipeline_text and card.get("pipeline"):
        card["pipeline"] = {k: v for k, v in card["pipeline"].items() if k != "text"}
    print(json.dumps(card, indent=2))
    return 0


def _report_change(event: dict[str, Any], registry: Registry) -> int:
    print(
        f"{registry.dag_id}: version {event['version']} is the champion now (was {event['from']}); {event['action']} by {event['by']}: {event['reason']}"
    )
    if event.get("champion_file_error"):
        print(
            f"warning: {registry.champion_file} was not updated: {event['champion_file_error']}",
            file=sys.stderr,
        )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from adclick_ops.registry.locate import registry_for

    registry = registry_for(args.dag, args.pipelines)
    return _report_change(registry.promote(args.version, args.reason), registry)


def cmd_rollback(args: argparse.Namespace) -> int:
    from adclick_ops.registry.locate import registry_for

    registry = registry_for(args.dag, args.pipelines)
    return _report_change(registry.rollback(args.reason), registry)


def cmd_check(args: argparse.Namespace) -> int:
    """Every problem of each registry, one line each; exit 1 when there is one."""
    problems = 0
    for registry in _registries(args.dag, args.pipelines):
        found = registry.problems()
        problems += len(found)
        for line in found:
            print(line)
        if not found:
            print(f"{registry.dag_id}: {len(registry.versions())} version(s), champion {registry.champion()}: no problem found")
    return 1 if problems else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from adclick_ops.registry.migrate import migrate_registry

    for registry in _registries(args.dag, args.pipelines):
        done = migrate_registry(registry)
        if not done:
            print(f"{registry.dag_id}: every version is an ONNX file already")
        for m in done:
            print(
                f"{registry.dag_id}: version {m.version}: {m.old} -> {m.new} "
                f"(probabilities within {m.difference:.1g} of the old model on {m.rows:,} rows)"
            )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from adclick_ops.predict import predict_file
    from adclick_ops.registry.locate import registry_for

    registry = registry_for(args.dag, args.pipelines)
    champion, rows = predict_file(registry, args.input, args.output, args.ignore_extra_columns)
    # the predictions may be on stdout: the summary goes to stderr then
    said = sys.stderr if args.output == "-" or args.output.startswith("/dev/") else sys.stdout
    print(f"{rows:,} row(s) scored by version {champion.version} of {champion.dag_id}; wrote {args.output}", file=said)
    return 0


def _guarded(func):
    """Expected problems (a bad file, no such version) as one line on stderr and exit 1, no traceback."""

    def run(args: argparse.Namespace) -> int:
        from adclick_ops.config import ConfigError
        from adclick_ops.registry.serialization import UnsafeModelError
        from adclick_ops.steps.data import DataError

        try:
            return func(args)
        except (
            RegistryError,
            DataError,
            UnsafeModelError,
            ConfigError,
            OSError,
        ) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def add_commands(sub: Any) -> None:
    models = sub.add_parser("models", help="the model versions of each DAG: list, show, promote, rollback, migrate")
    msub = models.add_subparsers(dest="models_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dag", default=None, help="the training DAG (default: the only one)")
        p.add_argument("--pipelines", default=None, help="pipelines folder (default: pipelines/)")

    p = msub.add_parser("list", help="every version, its metrics and the decision; * marks the champion")
    common(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_guarded(cmd_list))

    p = msub.add_parser("show", help="the model card of a version (JSON)")
    common(p)
    p.add_argument("version", type=int)
    p.add_argument(
        "--with-pipeline-text",
        action="store_true",
        help="include the pipeline file's text",
    )
    p.set_defaults(func=_guarded(cmd_show))

    p = msub.add_parser("promote", help="make a version the champion, without the gates")
    common(p)
    p.add_argument("version", type=int)
    p.add_argument("--reason", required=True, help="why; kept in the history")
    p.set_defaults(func=_guarded(cmd_promote))

    p = msub.add_parser("rollback", help="give the champion back to the previous champion")
    common(p)
    p.add_argument("--reason", default="rollback", help="why; kept in the history")
    p.set_defaults(func=_guarded(cmd_rollback))

    p = msub.add_parser("check", help="list every problem of the registry: damaged files, models failing their checks, a stale copy")
    common(p)
    p.set_defaults(func=_guarded(cmd_check))

    p = msub.add_parser("migrate", help="convert versions saved by earlier adclick-ops versions to ONNX, once")
    common(p)
    p.set_defaults(func=_guarded(cmd_migrate))

    p = sub.add_parser("predict", help="score a CSV file with the champion of a DAG")
    p.add_argument("--dag", default=None, help="the training DAG (default: the only one)")
    p.add_argument("--pipelines", default=None, help="pipelines folder (default: pipelines/)")
    p.add_argument(
        "--ignore-extra-columns",
        action="store_true",
        help="keep columns other than the features in the output, unscored",
    )
    p.add_argument("input", help="CSV file with a header naming the features, or - for standard input")
    p.add_argument(
        "output",
        help="CSV file to write, or - for stdout: the input columns, click_probability, clicked (an input column of either "
        "name is refused); a link, pipe or device is written through, never replaced",
    )
    p.set_defaults(func=_guarded(cmd_predict))
