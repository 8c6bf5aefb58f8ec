"""Reading a pipelines folder: every file validated on its own, then the checks across files.

Files with errors are kept out of the catalog and reported with all their issues; the good ones
stay usable. A file is re-read only when it changed, since the DAG processor parses every 30 s.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adclick_ops.config.errors import ConfigError, Issue, describe, field_path, issues_from_validation, value_at
from adclick_ops.config.locations import parse_location
from adclick_ops.config.models import DAG_ID_PATTERN, RESERVED_DAG_IDS, Dag, DefaultArgs, Defaults, dag_problems
from adclick_ops.config.paths import folder_entries
from adclick_ops.config.vocabulary import ENV_PIPELINES, ENV_PROJECT_ROOT
from adclick_ops.config.yamlio import YamlDocument, YamlReadError, declared_ids, parse_yaml, read_yaml

DEFAULTS_NAMES = ("defaults.yaml", "defaults.yml")
# The project this package was installed from: the last resort when neither an argument, the
# environment nor the DAG file names a pipelines folder.
PACKAGE_PROJECT = Path(__file__).resolve().parents[2]


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


def pipelines_dir(explicit: str | os.PathLike[str] | None = None, default: str | os.PathLike[str] | None = None) -> Path:
    """The pipelines folder: the argument, else $ADCLICK_OPS_PIPELINES, else `default`, else the package's project."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_PIPELINES):
        return Path(os.environ[ENV_PIPELINES])
    if default:
        return Path(default)
    return PACKAGE_PROJECT / "pipelines"


def project_root(catalog: Catalog) -> Path:
    """Relative paths in pipeline files are relative to this: $ADCLICK_OPS_HOME, else the folder holding pipelines/."""
    env = os.environ.get(ENV_PROJECT_ROOT)
    return Path(env).resolve() if env else catalog.root.resolve().parent


def _validate_dags(doc: YamlDocument) -> tuple[dict[str, Dag], list[Issue]]:
    """Every problem of every DAG of the file at once: how values were written, fields, and the graph."""
    dags: dict[str, Dag] = {}
    issues: list[Issue] = [Issue(doc.path, doc.line_of(loc), field_path(loc), message) for loc, message in doc.problems]
    # a value the reader already reported is not reported again by the models
    reported = {loc for loc, _ in doc.problems}
    for dag_id, body in doc.data.items():
        if not re.fullmatch(DAG_ID_PATTERN, dag_id):
            shown_id = dag_id if dag_id.isprintable() and dag_id.strip() == dag_id and dag_id else repr(dag_id)
            issues.append(
                Issue(
                    doc.path,
                    doc.line_of((dag_id,)),
                    shown_id,
                    f"{dag_id!r} is not a valid DAG id; expected 1 to 250 letters, digits, '_', '-' or '.'",
                    describe(dag_id),
                )
            )
            continue
        if dag_id in RESERVED_DAG_IDS:
            issues.append(
                Issue(
                    doc.path,
                    doc.line_of((dag_id,)),
                    dag_id,
                    f"{dag_id!r} is reserved by dag-factory; use pipelines/defaults.yaml for shared settings",
                    repr(dag_id),
                    "a DAG id other than 'default' and 'task_groups'",
                )
            )
            continue
        if not isinstance(body, dict):
            issues.append(
                Issue(
                    doc.path,
                    doc.line_of((dag_id,)),
                    dag_id,
                    f"expected a mapping of DAG settings; found {describe(body)}",
                    describe(body),
                    "a mapping of DAG settings",
                )
            )
            continue
        found: list[Issue] = []
        try:
            dag: Dag | None = Dag.model_validate(body)
        except ValidationError as exc:
            dag = None
            found.extend(i for i in issues_from_validation(doc, (dag_id,), exc, Dag) if not any(_within(i, loc) for loc in reported))
        for loc, message in dag_problems(body):
            full = (dag_id, *loc)
            found.append(Issue(doc.path, doc.line_of(full), field_path(full), message, value_at(body, loc)))
        if dag is not None:
            found.extend(_estimator_issues(doc, dag_id, dag))
        issues.extend(found)
        if dag is not None and not found:
            dags[dag_id] = dag
    return dags, issues


def _estimator_issues(doc: YamlDocument, dag_id: str, dag: Dag) -> list[Issue]:
    """The estimator's parameters against the table generated from scikit-learn (config/estimator_rules.py),
    without importing it: checked wherever a file is read, so what validate refuses no DAG file renders."""
    if not (dag.training and dag.training.estimator.params):
        return []
    from adclick_ops.config.estimator_rules import param_problems

    estimator = dag.training.estimator
    issues = []
    for problem in param_problems(estimator.name, dict(estimator.params)):
        loc = (dag_id, "training", "estimator", "params", *((problem.param,) if problem.param else ()))
        issues.append(Issue(doc.path, doc.line_of(loc), field_path(loc), problem.message, problem.found, problem.expected))
    return issues


def _within(issue: Issue, loc: tuple[Any, ...]) -> bool:
    path = field_path(loc)
    return issue.field == path or issue.field.startswith(path + ".") or issue.field.startswith(path + "[")


_cache: dict[tuple[str, str], tuple[tuple[int, ...], Any]] = {}


def _cached(path: Path, build):
    """Re-read a file only when it changed: the DAG processor parses every 30 s. Filed under the file itself (its
    absolute path, as named then: a relative name means another file after a change of working folder) and known
    unchanged by its inode, size and modification time (a copy keeps the time and size of its original)."""
    try:
        st = path.stat()
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        return build()
    name = (os.path.abspath(path), str(path))
    hit = _cache.get(name)
    if hit and hit[0] == key:
        return hit[1]
    value = build()
    _cache[name] = (key, value)
    return value


def _shown(path: Path) -> str:
    """A path as the user best recognises it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def shown_path(path: str | os.PathLike[str]) -> str:
    """The name a catalog files a path under (its key in `Catalog.errors`, `PipelineFile.path`)."""
    return _shown(Path(path))


def load_pipeline_file(path: str | os.PathLike[str], text: str | None = None) -> PipelineFile:
    """Read and validate one pipeline file on its own (no cross-file checks); `text` in place of its content."""
    p = Path(path)

    def build() -> PipelineFile | ConfigError:
        try:
            doc = read_yaml(p) if text is None else parse_yaml(text, str(p))
        except YamlReadError as exc:
            # the DAG ids it visibly declares still count as declared: the other files' triggers stay valid
            exc.text = exc.text or text
            recovered = declared_ids(exc.text) if exc.text else []
            return ConfigError([Issue(_shown(p), exc.line, "", exc.message)], declared=recovered)
        doc.path = _shown(p)
        dags, issues = _validate_dags(doc)
        if issues:
            return ConfigError(issues, declared=[str(d) for d in doc.data])
        return PipelineFile(doc.path, dags, doc)

    result = _cached(p, build) if text is None else build()
    if isinstance(result, ConfigError):
        raise result
    return result


def _load_defaults(root: Path) -> tuple[DefaultArgs, ConfigError | None]:
    for name in DEFAULTS_NAMES:
        p = root / name
        if os.path.lexists(p):
            try:
                doc = read_yaml(p, expected="a mapping with default_args")
            except YamlReadError as exc:
                return DefaultArgs(), ConfigError([Issue(_shown(p), exc.line, "", exc.message)])
            doc.path = _shown(p)
            issues = [Issue(doc.path, doc.line_of(loc), field_path(loc), message) for loc, message in doc.problems]
            try:
                defaults = Defaults.model_validate(doc.data).default_args
            except ValidationError as exc:
                issues.extend(issues_from_validation(doc, (), exc, Defaults))
                defaults = DefaultArgs()
            return defaults, (ConfigError(issues) if issues else None)
    return DefaultArgs(), None


def pipeline_paths(root: Path) -> list[Path]:
    """Every entry of the folder named *.yaml or *.yml but defaults.yaml: a folder, a broken link or an
    unreadable file so named is reported when it is read, never skipped."""
    return [p for p in folder_entries(root) if p.suffix in (".yaml", ".yml") and p.name not in DEFAULTS_NAMES]


def load_catalog(
    root: str | os.PathLike[str] | None = None, paths: list[Path] | None = None, texts: dict[Path, str] | None = None
) -> Catalog:
    """Validate every pipeline file of `root` (or the given files), then check across files.

    Files with errors are left out of `files` and reported in `errors`; the good ones stay usable.
    `texts` validates the given content in place of a file's own (its last valid version, `adclick_ops.lastgood`).
    """
    root_path = pipelines_dir(root)
    if paths is None:
        paths = pipeline_paths(Path(_shown(root_path)))
    defaults, defaults_error = _load_defaults(root_path)
    catalog = Catalog(root=root_path, defaults=defaults)
    if defaults_error:
        catalog.errors[defaults_error.issues[0].path] = defaults_error
    # the given texts by the name each file is filed under: the same file, whether named relative or absolute
    replaced = {_shown(k): v for k, v in (texts or {}).items()}
    for p in paths:
        try:
            catalog.files.append(load_pipeline_file(p, replaced.get(_shown(p))))
        except ConfigError as exc:
            catalog.errors[_shown(p)] = exc
    _cross_check(catalog, root_path)
    return catalog


def dataset_problem(dataset: str, project: str) -> str | None:
    """A local dataset must lie inside the project, links followed: the tasks read it, and its errors quote it."""
    where = parse_location(dataset, "dataset")
    if not where.local:
        return None  # object storage; the scheme was checked with the field
    path = where.path
    resolved = os.path.realpath(os.path.join(project, path))
    if resolved != project and not resolved.startswith(project.rstrip(os.sep) + os.sep):
        return f"{dataset!r} is outside the project ({project}); put the dataset in the project or in object storage"
    return None


def _trigger_cycles(catalog: Catalog) -> list[tuple[PipelineFile, str, str]]:
    """Each DAG on a cycle of triggers (itself included), with the cycle as a message.

    Every DAG triggers at most one other, so following the triggers from any DAG either ends or
    comes back to a DAG already met on that walk: that loop is a cycle, whatever files its DAGs are in.
    An `external` trigger that names a DAG of this folder is an edge too.
    """
    owner = {dag_id: (f, dag) for f in catalog.files for dag_id, dag in f.dags.items()}
    on_cycle: dict[str, list[str]] = {}
    done: set[str] = set()
    for start in owner:
        walk: list[str] = []
        node: str | None = start
        while node in owner and node not in done and node not in walk:
            walk.append(node)
            trigger = owner[node][1].trigger
            node = trigger.dag_id if trigger else None
        if node in walk:
            cycle = walk[walk.index(node) :]
            for member in cycle:
                on_cycle[member] = cycle
        done.update(walk)
    found = []
    for dag_id, cycle in on_cycle.items():
        i = cycle.index(dag_id)
        path = [*cycle[i:], *cycle[:i], dag_id]
        where = sorted({owner[d][0].path for d in cycle})
        if len(cycle) == 1:
            message = f"DAG {dag_id!r} triggers itself; each run would start another without end"
        else:
            message = f"trigger cycle: {' -> '.join(path)} (in {', '.join(where)}); each run would start another without end"
        found.append((owner[dag_id][0], dag_id, message))
    return found


def _model_location(model_dir: str, model_file: str, project: str) -> str:
    """Where a DAG's champion copy lands, spelled one way (the one reading of locations): an absolute real path, or the
    URI with its scheme in lower case and without a trailing slash."""
    where = parse_location(model_dir, "model_dir")
    if not where.local:
        return f"{where.scheme}://{where.path.rstrip('/')}/{model_file}"
    return os.path.join(os.path.realpath(os.path.join(project, where.path)), model_file)


def _cross_check(catalog: Catalog, root: Path) -> None:
    """Checks that need every file: unique DAG ids, trigger targets that exist, no trigger cycle, datasets in the
    project, one champion's copy per DAG."""
    known: dict[str, str] = {}
    # DAG ids of files with errors still count as declared, so one broken file does not cascade.
    for path, error in catalog.errors.items():
        known.update(dict.fromkeys(error.declared, path))
    bad: dict[str, list[Issue]] = {}
    _check_unique_ids(catalog, known, bad)
    _check_trigger_targets(catalog, root, known, bad)
    for f, dag_id, message in _trigger_cycles(catalog):
        _flag(
            bad,
            f,
            (dag_id, "trigger", "dag_id"),
            message,
            repr(f.dags[dag_id].trigger.dag_id),
            "a trigger graph without cycles: no DAG triggers itself, directly or through other DAGs",
        )
    project = os.path.realpath(project_root(catalog))
    _check_datasets(catalog, project, bad)
    _check_one_champion_each(catalog, project, bad)
    _check_outputs(catalog, project, root, bad)
    for path, issues in bad.items():
        catalog.errors[path] = ConfigError(issues)
    catalog.files = [f for f in catalog.files if f.path not in bad]


def _flag(
    bad: dict[str, list[Issue]], f: PipelineFile, loc: tuple[str, ...], message: str, found: str | None = None, expected: str | None = None
) -> None:
    """One issue of the cross-file checks, at the line and field of `loc` in file `f`."""
    bad.setdefault(f.path, []).append(Issue(f.path, f.document.line_of(loc), field_path(loc), message, found, expected))


def _check_unique_ids(catalog: Catalog, known: dict[str, str], bad: dict[str, list[Issue]]) -> None:
    for f in catalog.files:
        for dag_id in f.dags:
            if dag_id in known and known[dag_id] != f.path:
                bad.setdefault(f.path, []).append(
                    Issue(
                        f.path,
                        f.document.line_of((dag_id,)),
                        dag_id,
                        f"DAG id {dag_id!r} is also declared in {known[dag_id]}",
                        repr(dag_id),
                        "a DAG id declared in one file only",
                    )
                )
            known.setdefault(dag_id, f.path)


def _check_trigger_targets(catalog: Catalog, root: Path, known: dict[str, str], bad: dict[str, list[Issue]]) -> None:
    for f in catalog.files:
        for dag_id, dag in f.dags.items():
            if dag.trigger and not dag.trigger.external and dag.trigger.dag_id not in known:
                _flag(
                    bad,
                    f,
                    (dag_id, "trigger", "dag_id"),
                    f"DAG {dag.trigger.dag_id!r} is not declared in {_shown(root)}/ (declared: {', '.join(sorted(known)) or 'none'}); "
                    "declare it there or set trigger.external: true",
                    repr(dag.trigger.dag_id),
                    f"a DAG declared in {_shown(root)}/, or trigger.external: true",
                )


def _check_datasets(catalog: Catalog, project: str, bad: dict[str, list[Issue]]) -> None:
    for f in catalog.files:
        for dag_id, dag in f.dags.items():
            problem = dataset_problem(dag.training.dataset, project) if dag.training else None
            if problem:
                _flag(bad, f, (dag_id, "training", "dataset"), problem)


# Folders of the project's own files, which no output of a run may land in: outputs there could replace a DAG file,
# a pipeline file or the code that runs (the registry also never replaces a file it did not write).
OWN_FOLDERS = ("dags", "config", "adclick_ops", "schema")


def _own_folders(project: str, root: Path) -> dict[str, str]:
    """The project's own folders, real paths, with the name each goes by in messages."""
    from adclick_ops.lastgood import snapshot_folder

    found = {os.path.realpath(os.path.join(project, name)): f"{name}/" for name in OWN_FOLDERS}
    found[os.path.realpath(root)] = "the pipeline files' folder"
    found[os.path.realpath(snapshot_folder(root))] = "the last valid versions' folder"
    return found


def _inside_own_folder(value: str, what: str, project: str, own: dict[str, str]) -> str | None:
    """The own folder (its name, and the real path) that the local output location `value` lies in, or None."""
    where = parse_location(value, what)
    if not where.local:
        return None
    resolved = os.path.realpath(os.path.join(project, where.path))
    inside = next((name for folder, name in own.items() if resolved == folder or resolved.startswith(folder + os.sep)), None)
    return f"{inside} ({resolved})" if inside else None


def _check_outputs(catalog: Catalog, project: str, root: Path, bad: dict[str, list[Issue]]) -> None:
    own = _own_folders(project, root)
    for f in catalog.files:
        for dag_id, dag in f.dags.items():
            for what in ("model_dir", "artifacts_root") if dag.training else ():
                value = getattr(dag.training, what)
                inside = _inside_own_folder(value, what, project, own)
                if inside:
                    _flag(
                        bad,
                        f,
                        (dag_id, "training", what),
                        f"training.{what} of {dag_id!r} lies in {inside}, where the project keeps its own files; "
                        "a run's outputs there could replace them",
                        repr(value),
                        f"a folder of its own, such as the default {type(dag.training).model_fields[what].default!r}",
                    )


def _check_one_champion_each(catalog: Catalog, project: str, bad: dict[str, list[Issue]]) -> None:
    # one champion per DAG: the registry keeps each DAG apart under model_dir, but the champion's copy
    # <model_dir>/<model_file> is one file, which two DAGs would overwrite with each other's model
    writers: dict[str, tuple[str, str]] = {}
    for f in catalog.files:
        for dag_id, dag in f.dags.items():
            if not dag.training:
                continue
            location = _model_location(dag.training.model_dir, dag.training.model_file, project)
            if location in writers:
                other_dag, other_file = writers[location]
                _flag(
                    bad,
                    f,
                    (dag_id, "training", "model_dir"),
                    f"DAG {dag_id!r} ({f.path}) and DAG {other_dag!r} ({other_file}) both keep their champion in {location}; "
                    "each DAG needs its own model_dir or model_file, or the two would overwrite each other's champion",
                    repr(dag.training.model_dir),
                    "a model_dir/model_file that no other DAG uses",
                )
            else:
                writers[location] = (dag_id, f.path)
