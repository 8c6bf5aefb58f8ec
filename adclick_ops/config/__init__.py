"""Reading and validating `pipelines/`: the one place that turns YAML into checked settings.

Errors always say where (file, line, field path), what was found and what was expected, and a
file's errors are reported all at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adclick_ops.config.models import DAG_ID_PATTERN, Dag, Defaults, DefaultArgs
from adclick_ops.config.yamlio import YamlDocument, YamlReadError, read_yaml

DEFAULTS_NAMES = ("defaults.yaml", "defaults.yml")
PIPELINES_ENV = "ADCLICK_OPS_PIPELINES"

__all__ = [
    "Catalog", "ConfigError", "Issue", "PipelineFile", "load_catalog", "load_pipeline_file", "pipelines_dir",
]


@dataclass(frozen=True)
class Issue:
    path: str
    line: int | None
    field: str
    message: str
    found: str | None = None  # the offending value as the file spells it, when there is one
    expected: str | None = None  # what would be accepted there, in words

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in pipeline files."""

    def __init__(self, issues: list[Issue], declared: list[str] | None = None):
        self.issues = issues
        self.declared = declared or []  # DAG ids the broken file names, for the cross-file checks
        super().__init__("\n".join(str(i) for i in issues))


@dataclass
class PipelineFile:
    path: str
    dags: dict[str, Dag]
    document: YamlDocument


@dataclass
class Catalog:
    """Every pipeline file of a folder: the valid ones and the errors of the others."""

    root: Path
    defaults: DefaultArgs
    files: list[PipelineFile] = field(default_factory=list)
    errors: dict[str, ConfigError] = field(default_factory=dict)

    @property
    def dags(self) -> dict[str, Dag]:
        return {dag_id: dag for f in self.files for dag_id, dag in f.dags.items()}

    def raise_for_errors(self) -> None:
        if self.errors:
            raise ConfigError([i for e in self.errors.values() for i in e.issues])


def pipelines_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The pipelines folder: the argument, else $ADCLICK_OPS_PIPELINES, else ./pipelines of the project."""
    if explicit:
        return Path(explicit)
    if os.environ.get(PIPELINES_ENV):
        return Path(os.environ[PIPELINES_ENV])
    return Path(__file__).resolve().parents[2] / "pipelines"


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _issue_from_pydantic(doc: YamlDocument, prefix: tuple[Any, ...], err: dict[str, Any], model: type) -> Issue:
    loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    found = err.get("input")
    shown: str | None = _describe(found)
    if kind == "extra_forbidden":
        parent = _model_at(model, err["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent else "see docs/configuration.md"
        msg = f"unknown field {str(loc[-1])!r}; expected one of: {allowed}"
        shown, expected = repr(str(loc[-1])), f"one of: {allowed}"
    elif kind == "missing":
        parent = _model_at(model, err["loc"][:-1])
        desc = parent.model_fields[err["loc"][-1]].description if parent and err["loc"][-1] in parent.model_fields else None
        msg = "required field is missing" + (f" ({desc})" if desc else "")
        shown, expected = None, desc or "this field"
    elif kind == "value_error":
        msg = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
        expected = _expected_in(msg)
    else:
        msg = f"{err['msg'][0].lower()}{err['msg'][1:]}; found {_describe(found)}"
        # pydantic says "Input should be greater than 0": what follows "should" is what is expected
        expected = err["msg"].split(" should ", 1)[-1].removeprefix("be ")
    return Issue(doc.path, doc.line_of(loc), _field_path(loc), msg, shown, expected)


def _expected_in(message: str) -> str | None:
    """What a message says is expected: its "...; expected X" part (messages follow that form)."""
    return message.rsplit("; expected ", 1)[1] if "; expected " in message else None


def _value_at(data: Any, loc: tuple[Any, ...]) -> str | None:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return _describe(data)


def _model_at(model: type, loc: tuple[Any, ...]) -> type | None:
    """The pydantic model that sits at `loc` inside `model` (to list its fields in messages)."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        if isinstance(current, type) and hasattr(current, "model_fields"):
            if part not in current.model_fields:
                # a dict key, such as a task id
                continue
            ann = current.model_fields[part].annotation
        else:
            return None
        candidates = [ann]
        found = None
        while candidates:
            a = candidates.pop()
            if isinstance(a, type) and hasattr(a, "model_fields"):
                found = a
                break
            candidates.extend(typing.get_args(a))
        current = found
    return current if isinstance(current, type) and hasattr(current, "model_fields") else None


def _issues_from_validation(doc: YamlDocument, prefix: tuple[Any, ...], exc: ValidationError, model: type) -> list[Issue]:
    """One issue per place in the file: the branches of a union (str | int | ...) become one message."""
    issues: list[Issue] = []
    branches: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        if err["type"] not in ("missing", "extra_forbidden") and loc not in doc.lines:
            at = loc
            while at and at not in doc.lines:
                at = at[:-1]
            if at and len(at) < len(loc):
                branches.setdefault(at, []).append(err)
                continue
        issues.append(_issue_from_pydantic(doc, prefix, err, model))
    for at, errs in branches.items():
        if len(errs) == 1:
            issues.append(_issue_from_pydantic(doc, prefix, {**errs[0], "loc": at[len(prefix):]}, model))
            continue
        forms = sorted({str(e["loc"][len(at) - len(prefix)]).split("[")[0] for e in errs})
        found = _describe(errs[0].get("input"))
        issues.append(Issue(doc.path, doc.line_of(at), _field_path(at), f"found {found}; expected one of: {', '.join(forms)}", found, f"one of: {', '.join(forms)}"))
    return issues


def _validate_dags(doc: YamlDocument) -> tuple[dict[str, Dag], list[Issue]]:
    import re

    dags: dict[str, Dag] = {}
    issues: list[Issue] = []
    for dag_id, body in doc.data.items():
        if not isinstance(dag_id, str) or not re.fullmatch(DAG_ID_PATTERN, dag_id):
            shown_id = str(dag_id) if isinstance(dag_id, str) and dag_id.isprintable() else repr(dag_id)
            issues.append(Issue(doc.path, doc.line_of((dag_id,)), shown_id, f"{dag_id!r} is not a valid DAG id; expected letters, digits, '_', '-' or '.'",
                                _describe(dag_id), "letters, digits, '_', '-' or '.'"))
            continue
        if dag_id in ("default", "task_groups"):
            issues.append(Issue(doc.path, doc.line_of((dag_id,)), dag_id, f"{dag_id!r} is reserved by dag-factory; use pipelines/defaults.yaml for shared settings",
                                repr(dag_id), "a DAG id other than 'default' and 'task_groups'"))
            continue
        if not isinstance(body, dict):
            issues.append(Issue(doc.path, doc.line_of((dag_id,)), dag_id, f"expected a mapping of DAG settings; found {_describe(body)}",
                                _describe(body), "a mapping of DAG settings"))
            continue
        try:
            dag = Dag.model_validate(body)
        except ValidationError as exc:
            issues.extend(_issues_from_validation(doc, (dag_id,), exc, Dag))
            continue
        graph = dag.graph_problems()
        for loc, message in graph:
            full = (dag_id, *loc)
            issues.append(Issue(doc.path, doc.line_of(full), _field_path(full), message, _value_at(body, loc), _expected_in(message)))
        if not graph:
            dags[dag_id] = dag
    return dags, issues


_cache: dict[str, tuple[tuple[int, int], Any]] = {}


def _cached(path: Path, build):
    """Re-read a file only when it changed: the DAG processor parses every 30 s."""
    try:
        st = path.stat()
        key = (st.st_mtime_ns, st.st_size)
    except OSError:
        return build()
    hit = _cache.get(str(path))
    if hit and hit[0] == key:
        return hit[1]
    value = build()
    _cache[str(path)] = (key, value)
    return value


def _shown(path: Path) -> str:
    """A path as the user best recognises it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def load_pipeline_file(path: str | os.PathLike[str]) -> PipelineFile:
    """Read and validate one pipeline file on its own (no cross-file checks)."""
    p = Path(path)

    def build() -> PipelineFile | ConfigError:
        try:
            doc = read_yaml(p)
        except YamlReadError as exc:
            return ConfigError([Issue(_shown(p), exc.line, "", exc.message, expected=_expected_in(exc.message))])
        doc.path = _shown(p)
        dags, issues = _validate_dags(doc)
        if issues:
            return ConfigError(issues, declared=[str(d) for d in doc.data])
        return PipelineFile(doc.path, dags, doc)

    result = _cached(p, build)
    if isinstance(result, ConfigError):
        raise result
    return result


def _load_defaults(root: Path) -> tuple[DefaultArgs, ConfigError | None]:
    for name in DEFAULTS_NAMES:
        p = root / name
        if p.exists():
            try:
                doc = read_yaml(p)
            except YamlReadError as exc:
                return DefaultArgs(), ConfigError([Issue(_shown(p), exc.line, "", exc.message, expected=_expected_in(exc.message))])
            doc.path = _shown(p)
            try:
                return Defaults.model_validate(doc.data).default_args, None
            except ValidationError as exc:
                return DefaultArgs(), ConfigError(_issues_from_validation(doc, (), exc, Defaults))
    return DefaultArgs(), None


def pipeline_paths(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.name not in DEFAULTS_NAMES and p.is_file())


def load_catalog(root: str | os.PathLike[str] | None = None, paths: list[Path] | None = None) -> Catalog:
    """Validate every pipeline file of `root` (or the given files), then check across files.

    Files with errors are left out of `files` and reported in `errors`; the good ones stay usable.
    """
    root_path = pipelines_dir(root)
    if paths is None:
        if not root_path.is_dir():
            raise ConfigError([Issue(_shown(root_path), None, "", "pipelines folder not found")])
        paths = pipeline_paths(root_path)
    defaults, defaults_error = _load_defaults(root_path)
    catalog = Catalog(root=root_path, defaults=defaults)
    if defaults_error:
        catalog.errors[defaults_error.issues[0].path] = defaults_error
    for p in paths:
        try:
            catalog.files.append(load_pipeline_file(p))
        except ConfigError as exc:
            catalog.errors[_shown(p)] = exc
    _cross_check(catalog, root_path)
    return catalog


def _cross_check(catalog: Catalog, root: Path) -> None:
    """Checks that need every file: unique DAG ids, and trigger targets that exist."""
    known: dict[str, str] = {}
    # DAG ids of files with errors still count as declared, so one broken file does not cascade.
    for path, error in catalog.errors.items():
        known.update(dict.fromkeys(error.declared, path))
    bad: dict[str, list[Issue]] = {}
    for f in catalog.files:
        for dag_id in f.dags:
            if dag_id in known and known[dag_id] != f.path:
                bad.setdefault(f.path, []).append(
                    Issue(f.path, f.document.line_of((dag_id,)), dag_id, f"DAG id {dag_id!r} is also declared in {known[dag_id]}",
                          repr(dag_id), "a DAG id declared in one file only")
                )
            known.setdefault(dag_id, f.path)
    for f in catalog.files:
        for dag_id, dag in f.dags.items():
            if dag.trigger and not dag.trigger.external and dag.trigger.dag_id not in known:
                bad.setdefault(f.path, []).append(
                    Issue(
                        f.path,
                        f.document.line_of((dag_id, "trigger", "dag_id")),
                        f"{dag_id}.trigger.dag_id",
                        f"DAG {dag.trigger.dag_id!r} is not declared in {_shown(root)}/ (declared: {', '.join(sorted(known)) or 'none'}); "
                        "declare it there or set trigger.external: true",
                        repr(dag.trigger.dag_id),
                        f"a DAG declared in {_shown(root)}/, or trigger.external: true",
                    )
                )
    for path, issues in bad.items():
        catalog.errors[path] = ConfigError(issues)
    catalog.files = [f for f in catalog.files if f.path not in bad]
