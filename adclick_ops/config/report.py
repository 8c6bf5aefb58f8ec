"""What `adclick-ops validate` checks and how it answers: as text, as JSON, or as GitHub annotations.

Files named on the command line are validated in the context of their folder, so that references
between files (trigger targets, DAG ids declared twice) resolve against the files left unnamed.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from adclick_ops.config import DEFAULTS_NAMES, ConfigError, Issue, load_catalog, load_pipeline_file, pipeline_paths, pipelines_dir
from adclick_ops.config.paths import PathFault, kind, stat_of

FORMATS = ("text", "json", "github")


class UsageError(Exception):
    """The command cannot check anything: a path that does not exist, a folder that is not there."""


@dataclass
class Report:
    files: list[str] = field(default_factory=list)
    dags: list[str] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be checked, and why

    @property
    def valid(self) -> bool:
        return not self.errors


def _key(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(path)


def _check_folder(root: Path, named: list[Path] | None, report: Report) -> None:
    """Validate the whole of `root`; report every error if `named` is None, else those of the named files.

    A named file's change can break a file left unnamed (it removes a DAG another file triggers,
    or declares a DAG id a second time). Those cross-file errors are reported too, wherever they
    land; problems inside unnamed files are not, since those files are not what is being checked.
    """
    paths = pipeline_paths(root)
    if named is None and not paths:
        report.files.append(_shown_of(root, None))
        report.errors.append(
            Issue(
                _shown_of(root, None),
                None,
                "",
                f"no pipeline files in this folder; expected *.yaml files each declaring DAGs{_defaults_only(root)}",
            )
        )
        return
    known = {_key(p) for p in paths}
    # a file named explicitly is checked even if its name would not be picked from the folder
    extra = [p for p in named or [] if p.name not in DEFAULTS_NAMES and _key(p) not in known]
    catalog = load_catalog(root, paths + extra)
    defaults = [root / n for n in DEFAULTS_NAMES if (root / n).exists()]
    checked = paths + defaults if named is None else list(dict.fromkeys(named))
    wanted = {_key(p) for p in checked}
    for shown, error in catalog.errors.items():
        caused_here = Path(shown).name not in DEFAULTS_NAMES and _valid_alone(shown)
        if _key(shown) in wanted or caused_here:
            report.errors.extend(error.issues)
    report.files.extend(_shown_of(p, catalog) for p in checked)
    for f in catalog.files:
        if _key(f.path) in wanted:
            report.dags.extend(f.dags)
    from adclick_ops.lastgood import differences

    valid = {Path(f.path).name for f in catalog.files if _key(f.path) in wanted}
    report.notes.extend(differences(root, [p for p in checked if p.name not in DEFAULTS_NAMES], valid))


def _defaults_only(root: Path) -> str:
    present = [n for n in DEFAULTS_NAMES if os.path.lexists(root / n)]
    return f" ({present[0]} alone declares none)" if present else ""


def _valid_alone(path: str) -> bool:
    try:
        load_pipeline_file(path)
    except ConfigError:
        return False
    return True


def _shown_of(path: Path, catalog) -> str:
    for shown in [f.path for f in catalog.files] + list(catalog.errors) if catalog else []:
        if _key(shown) == _key(path):
            return shown
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def check(paths: list[str]) -> Report:
    """Validate the given files and folders (default: the pipelines folder); raise UsageError if one is missing."""
    report = Report()
    if not paths:
        paths = [str(pipelines_dir())]
    folders: dict[str, Path] = {}
    named: dict[str, list[Path]] = {}
    for raw in paths:
        p = Path(raw)
        try:
            mode = stat_of(p, "pipeline file or folder").st_mode
        except PathFault as exc:
            missing = exc.problem.endswith(": not found")
            raise UsageError(f"{raw}: no such file or folder" if missing else str(exc)) from None
        if stat.S_ISDIR(mode):
            folders.setdefault(_key(p), p)
        elif stat.S_ISREG(mode):
            named.setdefault(_key(p.parent), []).append(p)
        else:
            raise UsageError(f"{raw}: not a file or folder but {kind(mode)}")
    try:
        for folder in folders.values():
            _check_folder(folder, None, report)
        for key, files in named.items():
            if key in folders:  # the whole folder is already checked
                continue
            _check_folder(files[0].parent, files, report)
    except PathFault as exc:  # the folder cannot be listed: nothing was checked
        raise UsageError(str(exc)) from None
    return report


# --- the answer, in each format -------------------------------------------------------------------


def as_text(report: Report) -> tuple[str, str]:
    """(stdout, stderr) of the text format: one `file:line: field: problem` line per error."""
    notes = "".join(f"note: {n}\n" for n in report.notes)
    if report.valid:
        return f"OK: {len(report.files)} file(s), {len(report.dags)} DAG(s): {', '.join(report.dags)}\n", notes
    lines = [str(i) for i in report.errors] + [f"{len(report.errors)} error(s)"]
    return "", notes + "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    return (
        json.dumps(
            {
                "valid": report.valid,
                "files": report.files,
                "dags": report.dags,
                "errors": [
                    {"file": i.path, "line": i.line, "field": i.field, "found": i.found, "expected": i.expected, "message": i.message}
                    for i in report.errors
                ],
                "notes": report.notes,
            },
            indent=2,
        )
        + "\n"
    )


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(issue: Issue) -> str:
    """A GitHub Actions workflow command that annotates `issue` on its file and line."""
    props = [f"file={_escape_property(issue.path)}"]
    if issue.line:
        props.append(f"line={issue.line}")
    props.append(f"title={_escape_property('adclick-ops: ' + (issue.field or 'pipeline file'))}")
    return f"::error {','.join(props)}::{_escape_data(issue.message)}"


def as_github(report: Report) -> str:
    notes = "".join(f"::notice title=adclick-ops validate::{_escape_data(n)}\n" for n in report.notes)
    if report.valid:
        return notes + f"adclick-ops: {len(report.files)} file(s) valid, {len(report.dags)} DAG(s)\n"
    return notes + "\n".join(annotation(i) for i in report.errors) + "\n"


def render(report: Report, fmt: str) -> tuple[str, str]:
    """(stdout, stderr) for `fmt`."""
    if fmt == "json":
        return as_json(report), ""
    if fmt == "github":
        return as_github(report), ""
    return as_text(report)


def usage_error(message: str, fmt: str) -> tuple[str, str]:
    """(stdout, stderr) for a check that could not run (exit 2)."""
    if fmt == "github":
        return f"::error title=adclick-ops validate::{_escape_data(message)}\n", message + "\n"
    return "", message + "\n"
