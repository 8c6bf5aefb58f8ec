"""`adclick-ops plan`: what the pipelines of the working tree change against a git revision.

Both sides are read and validated with the same models as `validate` (the base side straight from
git's object store), then compared as validated settings: a value spelled differently but meaning
the same (a default written out, say) is no change. Needs git, not Airflow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adclick_ops.config import DEFAULTS_NAMES, ConfigError, Issue, load_catalog, load_pipeline_file
from adclick_ops.config.models import Dag, DefaultArgs

FORMATS = ("text", "json", "markdown")
WORKING_TREE = "working tree"
_GIT_TIMEOUT = 30


class PlanError(Exception):
    """No plan can be made: not a git repository, an unknown revision, a missing folder."""


@dataclass
class Side:
    """One side of the comparison: the valid DAGs, the ids declared in invalid files, and the errors."""

    label: str
    dags: dict[str, Dag] = field(default_factory=dict)
    defaults: DefaultArgs = field(default_factory=DefaultArgs)
    declared_invalid: set[str] = field(default_factory=set)
    issues: list[Issue] = field(default_factory=list)
    commit: str | None = None
    note: str | None = None

    def declares(self, dag_id: str) -> bool:
        return dag_id in self.dags or dag_id in self.declared_invalid


@dataclass(frozen=True)
class Change:
    field: str
    old: Any  # None when the setting is absent (or null) on that side
    new: Any


@dataclass
class DagPlan:
    dag_id: str
    status: str  # added, removed, changed, not compared
    tasks_added: list[str] = field(default_factory=list)
    tasks_removed: list[str] = field(default_factory=list)
    edges_added: list[tuple[str, str]] = field(default_factory=list)
    edges_removed: list[tuple[str, str]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    reason: str | None = None
    tasks: list[str] = field(default_factory=list)  # of an added or removed DAG


@dataclass
class Plan:
    folder: str
    base: Side
    new: Side
    dags: list[DagPlan] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.dags)


# --- reading both sides ---------------------------------------------------------------------------


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, timeout=_GIT_TIMEOUT)
    except FileNotFoundError:
        raise PlanError("git is not installed (plan reads the base revision with git)") from None
    except subprocess.TimeoutExpired:
        raise PlanError(f"git {args[0]} did not answer within {_GIT_TIMEOUT} s") from None
    if result.returncode != 0:
        raise PlanError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip() or f'exit {result.returncode}'}")
    return result.stdout


def _side_from_catalog(label: str, root: Path) -> Side:
    side = Side(label)
    try:
        catalog = load_catalog(root)
    except ConfigError as exc:  # the folder itself is unreadable
        side.issues.extend(exc.issues)
        return side
    side.dags = dict(catalog.dags)
    side.defaults = catalog.defaults
    for path, error in catalog.errors.items():
        side.declared_invalid.update(error.declared)
        side.issues.extend(error.issues)
        if not error.declared and Path(path).name not in DEFAULTS_NAMES:
            # valid on its own, so it failed a check across files only: its settings still compare
            try:
                side.dags.update({k: v for k, v in load_pipeline_file(path).dags.items() if k not in side.dags})
            except ConfigError as exc:
                side.declared_invalid.update(exc.declared)
    side.declared_invalid -= set(side.dags)
    return side


def read_working_tree(folder: Path) -> Side:
    if not folder.is_dir():
        raise PlanError(f"{folder}: pipelines folder not found")
    return _side_from_catalog(WORKING_TREE, folder)


def read_revision(folder: Path, ref: str) -> Side:
    """The pipelines folder as it is at `ref`, validated like the working tree's."""
    start = folder if folder.is_dir() else folder.parent
    try:
        top = Path(_git(start, "rev-parse", "--show-toplevel").decode().strip())
    except PlanError as exc:
        raise PlanError(f"{folder} is not inside a git repository; plan compares with a git revision ({exc})") from None
    try:
        rel = Path(os.path.realpath(folder)).relative_to(os.path.realpath(top)).as_posix()
    except ValueError:
        raise PlanError(f"{folder} is not inside the git repository at {top}") from None
    try:
        commit = _git(top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}").decode().strip()
    except PlanError:
        raise PlanError(f"unknown git revision {ref!r}") from None
    where = f"{ref}:{rel}"
    listing = _git(top, "ls-tree", "-z", commit, "--", f"{rel}/" if rel != "." else ".").split(b"\0")
    blobs: dict[str, str] = {}
    for entry in filter(None, listing):
        meta, _, name = entry.decode("utf-8", "surrogateescape").partition("\t")
        mode, kind, sha = meta.split()
        base = name.rsplit("/", 1)[-1]
        if kind == "blob" and mode != "120000" and base.endswith((".yaml", ".yml")):
            blobs[base] = sha
    with tempfile.TemporaryDirectory(prefix="adclick-plan-") as tmp:
        contents = _cat_blobs(top, list(blobs.values()))
        for name, sha in blobs.items():
            (Path(tmp) / name).write_bytes(contents[sha])
        side = _side_from_catalog(ref, Path(tmp))
        side.issues = [_relabel(i, tmp, where) for i in side.issues]
    side.commit = commit
    if not blobs:
        side.note = f"{rel}/ holds no pipeline files at {ref}"
    return side


def _cat_blobs(top: Path, shas: list[str]) -> dict[str, bytes]:
    """The contents of the blobs, read with one `git cat-file --batch`."""
    if not shas:
        return {}
    out = _git(top, "cat-file", "--batch", stdin="".join(f"{s}\n" for s in shas).encode())
    contents: dict[str, bytes] = {}
    pos = 0
    for sha in shas:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        contents[sha] = out[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1
    return contents


def _relabel(issue: Issue, tmp: str, where: str) -> Issue:
    """Name the base revision's files as git does (REF:pipelines/x.yaml), not by the scratch copy."""
    spellings = sorted({os.path.realpath(tmp), tmp, os.path.relpath(tmp)}, key=len, reverse=True)

    def fix(text: str | None) -> str | None:
        for spelling in spellings:
            text = text.replace(spelling, where) if text else text
        return text

    path = issue.path
    for prefix in (os.path.realpath(tmp), tmp):
        rel = os.path.relpath(os.path.realpath(path), prefix) if os.path.isabs(path) or os.path.exists(path) else None
        if rel and not rel.startswith(".."):
            path = f"{where}/{rel}"
            break
    return dataclasses.replace(issue, path=path, message=fix(issue.message), expected=fix(issue.expected))


# --- comparing --------------------------------------------------------------------------------


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    """Leaves of nested mappings by dotted path; lists are values of their own, nulls are absent."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif value is not None:
        out[prefix] = value
    return out


def _settings(dag: Dag, defaults: DefaultArgs) -> dict[str, Any]:
    """The DAG's knobs as they take effect: default_args merged over defaults.yaml as the factory does."""
    merged = defaults.model_dump(exclude_none=True)
    if dag.default_args is not None:
        merged.update(dag.default_args.model_dump(exclude_unset=True, exclude_none=True))
    body = dag.model_dump(mode="json", exclude={"tasks", "default_args"}, exclude_none=True)
    body["default_args"] = merged
    return _flatten(body, "", {})


def _edges(dag: Dag) -> set[tuple[str, str]]:
    return {(up, task_id) for task_id, task in dag.tasks.items() for up in task.dependencies}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    return [
        Change(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys(), key=_field_order(old, new)) if old.get(k) != new.get(k)
    ]


def _field_order(old: dict[str, Any], new: dict[str, Any]):
    # the order of the file (the model's field order), base side first
    order = {k: i for i, k in enumerate(list(old) + [k for k in new if k not in old])}
    return lambda k: order[k]


def compare_dag(dag_id: str, old: Dag, new: Dag, old_defaults: DefaultArgs, new_defaults: DefaultArgs) -> DagPlan:
    plan = DagPlan(dag_id, "changed")
    plan.tasks_added = [t for t in new.tasks if t not in old.tasks]
    plan.tasks_removed = [t for t in old.tasks if t not in new.tasks]
    old_edges, new_edges = _edges(old), _edges(new)
    plan.edges_added = sorted(new_edges - old_edges)
    plan.edges_removed = sorted(old_edges - new_edges)
    plan.changes = _changes(_settings(old, old_defaults), _settings(new, new_defaults))
    for task_id in (t for t in new.tasks if t in old.tasks):
        before = _flatten(old.tasks[task_id].model_dump(mode="json", exclude={"dependencies"}, exclude_none=True), f"tasks.{task_id}", {})
        after = _flatten(new.tasks[task_id].model_dump(mode="json", exclude={"dependencies"}, exclude_none=True), f"tasks.{task_id}", {})
        plan.changes.extend(_changes(before, after))
    return plan


def compare(folder: str, base: Side, new: Side) -> Plan:
    plan = Plan(folder, base, new)
    ids = list(dict.fromkeys([*base.dags, *sorted(base.declared_invalid), *new.dags, *sorted(new.declared_invalid)]))
    for dag_id in ids:
        if dag_id in base.dags and dag_id in new.dags:
            dag_plan = compare_dag(dag_id, base.dags[dag_id], new.dags[dag_id], base.defaults, new.defaults)
            if any((dag_plan.tasks_added, dag_plan.tasks_removed, dag_plan.edges_added, dag_plan.edges_removed, dag_plan.changes)):
                plan.dags.append(dag_plan)
        elif dag_id in new.dags and not base.declares(dag_id):
            plan.dags.append(DagPlan(dag_id, "added", tasks=list(new.dags[dag_id].tasks)))
        elif dag_id in base.dags and not new.declares(dag_id):
            plan.dags.append(DagPlan(dag_id, "removed", tasks=list(base.dags[dag_id].tasks)))
        elif new.declares(dag_id) and not base.declares(dag_id):
            plan.dags.append(DagPlan(dag_id, "added", reason="its file is invalid in the working tree"))
        elif base.declares(dag_id) and not new.declares(dag_id):
            plan.dags.append(DagPlan(dag_id, "removed", reason=f"its file was invalid at {base.label}"))
        else:
            side = "the working tree" if dag_id not in new.dags else base.label
            plan.dags.append(DagPlan(dag_id, "not compared", reason=f"its file is invalid in {side}"))
    return plan


def plan(folder: Path, base: str = "HEAD") -> Plan:
    new = read_working_tree(folder)
    old = read_revision(folder, base)
    rel = os.path.relpath(folder)
    return compare(str(folder) if rel.startswith("..") else rel, old, new)


# --- the answer -----------------------------------------------------------------------------------


def _show(value: Any) -> str:
    return "none" if value is None else json.dumps(value, ensure_ascii=False)


def _compared(d: DagPlan) -> bool:
    """Whether the entry is a change seen on both sides: not a DAG whose file is invalid on a side."""
    return d.status == "changed" or (d.status in ("added", "removed") and d.reason is None)


def _count(plan: Plan) -> int:
    return sum(
        len(d.changes) + len(d.tasks_added) + len(d.tasks_removed) + len(d.edges_added) + len(d.edges_removed)
        if d.status == "changed"
        else 1
        for d in plan.dags
        if _compared(d)
    )


def _summary(plan: Plan) -> str:
    """The changes, then the invalid files and the DAGs they keep from being compared, each counted apart."""
    changed = [d for d in plan.dags if _compared(d)]
    text = f"{_count(plan)} change(s) in {len(changed)} DAG(s)" if changed else "No changes"
    more = [
        f"{len(files)} invalid file(s) {where}"
        for where, files in (
            ("in the working tree", {i.path for i in plan.new.issues}),
            (f"at {plan.base.label}", {i.path for i in plan.base.issues}),
        )
        if files
    ]
    if len(plan.dags) > len(changed):
        more.append(f"{len(plan.dags) - len(changed)} DAG(s) not compared")
    return text + ("; " + ", ".join(more) if more else "") + "."


def as_text(plan: Plan) -> str:
    short = f" ({plan.base.commit[:12]})" if plan.base.commit else ""
    lines = [f"Plan for {plan.folder}/: {plan.base.label}{short} -> {WORKING_TREE}"]
    for d in plan.dags:
        if d.status == "added":
            lines.append(f"+ DAG {d.dag_id} added" + (f": {', '.join(d.tasks)}" if d.tasks else f" ({d.reason})"))
        elif d.status == "removed":
            lines.append(f"- DAG {d.dag_id} removed" + (f": {', '.join(d.tasks)}" if d.tasks else f" ({d.reason})"))
        elif d.status == "not compared":
            lines.append(f"? DAG {d.dag_id} not compared: {d.reason}")
        else:
            lines.append(f"~ DAG {d.dag_id}")
            lines += [f"    + task {t}" for t in d.tasks_added] + [f"    - task {t}" for t in d.tasks_removed]
            lines += [f"    + edge {u} -> {v}" for u, v in d.edges_added] + [f"    - edge {u} -> {v}" for u, v in d.edges_removed]
            lines += [f"    ~ {c.field}: {_show(c.old)} → {_show(c.new)}" for c in d.changes]
    lines.append(_summary(plan))
    for side in (plan.base, plan.new):
        if side.note:
            lines.append(f"note: {side.note}")
        if side.issues:
            lines.append(f"{'The working tree' if side is plan.new else side.label} is invalid: {len(side.issues)} error(s)")
            lines += [f"    {i}" for i in side.issues]
    return "\n".join(lines) + "\n"


def _issue_json(i: Issue) -> dict[str, Any]:
    return {"file": i.path, "line": i.line, "field": i.field, "found": i.found, "expected": i.expected, "message": i.message}


def as_json(plan: Plan) -> str:
    def side(s: Side) -> dict[str, Any]:
        return {
            "ref": s.label,
            "commit": s.commit,
            "valid": not s.issues,
            "dags": sorted(s.dags),
            "note": s.note,
            "errors": [_issue_json(i) for i in s.issues],
        }

    dags = []
    for d in plan.dags:
        item: dict[str, Any] = {"dag_id": d.dag_id, "status": d.status}
        if d.status == "changed":
            item |= {
                "tasks_added": d.tasks_added,
                "tasks_removed": d.tasks_removed,
                "edges_added": [list(e) for e in d.edges_added],
                "edges_removed": [list(e) for e in d.edges_removed],
                "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in d.changes],
            }
        else:
            item |= {"tasks": d.tasks, "reason": d.reason}
        dags.append(item)
    return (
        json.dumps({"folder": plan.folder, "changed": plan.changed, "base": side(plan.base), "new": side(plan.new), "dags": dags}, indent=2)
        + "\n"
    )


def _md(text: str) -> str:
    """Text as inline code inside a table cell: pipes escaped, no line breaks, backticks fenced."""
    text = text.replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def as_markdown(plan: Plan) -> str:
    short = f" ({plan.base.commit[:12]})" if plan.base.commit else ""
    out = [f"### adclick-ops plan: {_md(plan.folder + '/')} at {_md(plan.base.label)}{short} → working tree", ""]
    out += [_summary(plan), ""]
    for d in plan.dags:
        if d.status in ("added", "removed"):
            what = f"tasks: {', '.join(_md(t) for t in d.tasks)}" if d.tasks else d.reason
            out += [f"- **{d.dag_id}** {d.status} ({what})", ""]
            continue
        if d.status == "not compared":
            out += [f"- **{d.dag_id}** not compared: {d.reason}", ""]
            continue
        out += [f"**{d.dag_id}**", "", "| | setting | before | after |", "|---|---|---|---|"]
        out += [f"| + | task {_md(t)} | | added |" for t in d.tasks_added]
        out += [f"| − | task {_md(t)} | removed | |" for t in d.tasks_removed]
        out += [f"| + | edge {_md(f'{u} → {v}')} | | added |" for u, v in d.edges_added]
        out += [f"| − | edge {_md(f'{u} → {v}')} | removed | |" for u, v in d.edges_removed]
        out += [f"| ~ | {_md(c.field)} | {_md(_show(c.old))} | {_md(_show(c.new))} |" for c in d.changes]
        out.append("")
    for side in (plan.base, plan.new):
        if side.note:
            out += [f"Note: {side.note}.", ""]
        if side.issues:
            who = "The working tree's pipelines are" if side is plan.new else f"The pipelines at {_md(side.label)} are"
            out += [f"> **{who} invalid** ({len(side.issues)} error(s)):", ">"]
            out += [
                f"> - {_md(i.path + (f':{i.line}' if i.line else ''))} {_md(i.field) if i.field else ''} {i.message.replace(chr(10), ' ')}"
                for i in side.issues
            ]
            out.append("")
    return "\n".join(out)


def render(plan: Plan, fmt: str) -> str:
    return {"json": as_json, "markdown": as_markdown}.get(fmt, as_text)(plan)
