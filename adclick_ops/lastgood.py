"""The last valid version of each pipeline file: recorded at parse, rendered while a later edit does not validate.

A pipeline file that validated once may stop validating (a typo pushed to a live deployment). Its
DAGs then go on from the last version of the file that passed full validation in its folder, and
the file's errors are filed as its import error all the same (`render`). A snapshot is:

- one JSON file per pipeline file, `<name>.json` in the snapshot folder: `last-good/` beside the
  pipelines folder, or $ADCLICK_OPS_LAST_GOOD. Every process that parses the DAG file (DAG processor,
  task processes on any worker, `airflow dags test`) reads the same folder, so a run started on the
  last valid version runs each of its tasks on it. The Compose stack mounts it into every service.
- written whole or not at all: a temporary file in the same folder, fsync, os.replace, fsync of the
  folder. A reader sees the old snapshot or the new one, never a mix; it checks the recorded sha256
  of the content all the same, and validates the content with today's code before it is used.
- recorded only from content that passed validation with the whole folder (cross-file references
  included) and that Airflow accepted as DAGs; never from a task process, which builds one DAG.
- removed when its pipeline file is removed: a file deleted on purpose takes its DAGs with it.

Nothing here reaches the network: the git commit comes from the local `git rev-parse`, run only when
a new version is recorded.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adclick_ops import jsonio
from adclick_ops.config import Catalog, ConfigError, PipelineFile, load_catalog, pipeline_paths, shown_path
from adclick_ops.config.vocabulary import ENV_LAST_GOOD, NOT_RUN_MARKER, RUNS_MARKER
from adclick_ops.config.yamlio import MAX_FILE_BYTES, YamlReadError, read_bounded

FORMAT = 1
FOLDER_NAME = "last-good"
SUFFIX = ".json"
# a snapshot holds one pipeline file (at most MAX_FILE_BYTES) as JSON text: room for escapes, and no more
MAX_SNAPSHOT_BYTES = 8 * MAX_FILE_BYTES


class SnapshotUnreadable(Exception):
    """A snapshot file that is not a whole, self-consistent snapshot."""


@dataclass(frozen=True)
class Snapshot:
    file: str  # the pipeline file's name in its folder
    text: str
    sha256: str
    recorded_at: str  # ISO 8601, UTC
    commit: str | None  # HEAD of the git work tree holding the pipelines folder, when there is one

    def describe(self) -> str:
        commit = f"commit {self.commit[:12]}" if self.commit else "not in a git work tree"
        return f"sha256 {self.sha256[:12]}, recorded {self.recorded_at}, {commit}"

    def as_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "file": self.file,
            "sha256": self.sha256,
            "recorded_at": self.recorded_at,
            "commit": self.commit,
            "text": self.text,
        }


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def snapshot_folder(pipelines: str | os.PathLike[str]) -> Path:
    """$ADCLICK_OPS_LAST_GOOD, else `last-good/` beside the pipelines folder."""
    env = os.environ.get(ENV_LAST_GOOD)
    if env:
        return Path(env)
    return Path(os.path.abspath(pipelines)).parent / FOLDER_NAME


def _snapshot_path(folder: Path, name: str) -> Path:
    return folder / (name + SUFFIX)


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_SNAPSHOT_BYTES; OSError for anything else (a FIFO is never waited on)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        raw = fh.read(MAX_SNAPSHOT_BYTES + 1)
    if len(raw) > MAX_SNAPSHOT_BYTES:
        raise OSError(errno.EFBIG, f"more than {MAX_SNAPSHOT_BYTES} bytes")
    return raw


def read_snapshot(folder: Path, name: str) -> Snapshot | None:
    """The snapshot of pipeline file `name`; None when there is none; SnapshotUnreadable when it is not whole."""
    path = _snapshot_path(folder, name)
    try:
        raw = _read_regular(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SnapshotUnreadable(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = jsonio.loads(raw)
    except ValueError as exc:
        raise SnapshotUnreadable(f"{path}: not a snapshot ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SnapshotUnreadable(f"{path}: not a snapshot of format {FORMAT}")
    text, digest, recorded, commit = data.get("text"), data.get("sha256"), data.get("recorded_at"), data.get("commit")
    if not (
        isinstance(text, str) and isinstance(digest, str) and isinstance(recorded, str) and (commit is None or isinstance(commit, str))
    ):
        raise SnapshotUnreadable(f"{path}: a field is missing or of the wrong type")
    if data.get("file") != name:
        raise SnapshotUnreadable(f"{path}: it records {data.get('file')!r}, not {name!r}")
    if sha256(text) != digest:
        raise SnapshotUnreadable(f"{path}: its content does not match its sha256")
    return Snapshot(name, text, digest, recorded, commit)


def git_commit(folder: Path) -> str | None:
    """HEAD of the git work tree that holds `folder`, or None (no git, no work tree). Local only, no hooks."""
    try:
        result = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "-C", str(folder), "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) in (40, 64) else None


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_snapshot(folder: Path, name: str, text: str, commit: str | None) -> Snapshot:
    """Record `text` as the last valid version of pipeline file `name`: whole or not at all."""
    snap = Snapshot(name, text, sha256(text), dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), commit)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(snap.as_json(), fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # every component reads it, under whichever user it runs
        os.replace(tmp, _snapshot_path(folder, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)
    return snap


def record(folder: Path, name: str, text: str, pipelines: Path) -> Snapshot | None:
    """Record `text` unless the snapshot already holds it; None when nothing was written (same content, or a
    folder that cannot be written: the parse goes on, the previous snapshot stays)."""
    try:
        current = read_snapshot(folder, name)
    except SnapshotUnreadable:
        current = None
    if current is not None and current.sha256 == sha256(text):
        return None
    try:
        return write_snapshot(folder, name, text, git_commit(pipelines))
    except OSError:
        return None


def prune(folder: Path, names: set[str]) -> list[str]:
    """Remove the snapshots of pipeline files that are gone; the names removed."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.endswith(SUFFIX) and not entry.name.startswith(".") and entry.name[: -len(SUFFIX)] not in names:
            try:
                entry.unlink()
            except OSError:
                continue
            removed.append(entry.name[: -len(SUFFIX)])
    return removed


@dataclass
class Kept:
    """A broken pipeline file whose DAGs are rendered from its last valid version."""

    file: PipelineFile  # the last valid version, validated today in the folder's context
    snapshot: Snapshot
    errors: ConfigError  # the current file's errors


@dataclass
class Decision:
    kept: list[Kept]
    # what the import error of a broken file says besides its errors: what runs instead, or why nothing does
    notes: dict[str, str]


def _first(error: ConfigError, n: int = 3) -> str:
    lines = [str(i) for i in error.issues]
    more = f"\n... and {len(lines) - n} more" if len(lines) > n else ""
    return "\n".join(lines[:n]) + more


def _snapshots_of_broken(catalog: Catalog, snapshots: Path, decision: Decision) -> tuple[dict[Path, str], dict[str, Snapshot]]:
    """The last valid version of each broken file that has one: (texts by path, snapshots by shown name); notes for unreadable ones."""
    present = {shown_path(p): p for p in pipeline_paths(catalog.root)} if catalog.root.is_dir() else {}
    texts: dict[Path, str] = {}
    found: dict[str, Snapshot] = {}
    for shown in catalog.errors:
        path = present.get(shown)
        if path is None:  # defaults.yaml: its errors stand alone
            continue
        try:
            snap = read_snapshot(snapshots, path.name)
        except SnapshotUnreadable as exc:
            decision.notes[shown] = f"{NOT_RUN_MARKER} its last valid version cannot be used ({exc}); its DAGs are not rendered."
            continue
        if snap is None:  # never validated (or recorded): an import error and no DAG
            continue
        texts[path] = snap.text
        found[shown] = snap
    return texts, found


def keep_last_good(catalog: Catalog, snapshots: Path) -> Decision:
    """Which broken files of `catalog` go on from their last valid version, and the notes their import errors carry.

    A snapshot is used when it is whole, validates with today's code in the folder as it is now (the
    other files as they are, with this file's snapshot in its place), declares no DAG id that a valid
    file now declares, and says `on_invalid: keep_last_good` for the DAGs it keeps.
    """
    decision = Decision([], {})
    texts, found = _snapshots_of_broken(catalog, snapshots, decision)
    if not texts:
        return decision
    then = load_catalog(catalog.root, texts=texts)
    valid_now = catalog.dags
    for shown, snap in found.items():
        error = then.errors.get(shown)
        if error is not None:
            decision.notes[shown] = (
                f"{NOT_RUN_MARKER} its last valid version ({snap.describe()}) does not validate any more, so its DAGs are not "
                f"rendered:\n{_first(error)}"
            )
            continue
        kept_file = next(f for f in then.files if f.path == shown)
        clash = sorted(set(kept_file.dags) & set(valid_now))
        if clash:
            decision.notes[shown] = (
                f"{NOT_RUN_MARKER} its last valid version ({snap.describe()}) declares {', '.join(clash)}, now declared by "
                "another file; its DAGs are not rendered."
            )
            continue
        stopped = sorted(d for d, dag in kept_file.dags.items() if dag.on_invalid == "stop")
        kept_dags = {d: dag for d, dag in kept_file.dags.items() if dag.on_invalid != "stop"}
        if stopped and not kept_dags:
            decision.notes[shown] = f"{NOT_RUN_MARKER} its last valid version ({snap.describe()}) sets on_invalid: stop."
            continue
        note = f"{RUNS_MARKER} {', '.join(sorted(kept_dags))} from {snap.describe()}."
        if stopped:
            note += f" Not {', '.join(stopped)}: on_invalid: stop."
        decision.notes[shown] = note
        decision.kept.append(Kept(PipelineFile(kept_file.path, kept_dags, kept_file.document), snap, catalog.errors[shown]))
    return decision


def differences(pipelines: Path, paths: list[Path] | None = None, valid: set[str] | None = None) -> list[str]:
    """One line per pipeline file whose content is not the last valid version that Airflow renders (`validate`, `plan`).

    `valid`: names of the files that validate now (their next parse records them); the others keep their last valid
    version running.
    """
    folder = snapshot_folder(pipelines)
    lines = []
    decision: Decision | None = None  # what the next parse does with the broken files: read once, when one differs
    for path in paths if paths is not None else pipeline_paths(Path(pipelines)):
        try:
            snap = read_snapshot(folder, path.name)
            # a FIFO or device named *.yaml is never opened (it would block): validate reports it
            text = None if snap is None else read_bounded(path, shown_path(path)).decode("utf-8", "replace")
        except (SnapshotUnreadable, YamlReadError):
            continue
        if snap is None or snap.sha256 == sha256(text):
            continue
        if valid is not None and path.name in valid:
            lines.append(
                f"{shown_path(path)} differs from the last valid version that Airflow runs ({snap.describe()}); "
                "Airflow renders this version at its next parse"
            )
            continue
        if decision is None:
            decision = keep_last_good(load_catalog(pipelines), folder)
        lines.append(_broken_note(path, snap, decision))
    return lines


def _broken_note(path: Path, snap: Snapshot, decision: Decision) -> str:
    """What Airflow's next parse does with the broken file `path` whose last valid version is `snap`, as its import error says."""
    shown = shown_path(path)
    if any(k.file.path == shown for k in decision.kept):
        return (
            f"{shown} differs from the last valid version that Airflow runs ({snap.describe()}); "
            "Airflow runs that version until this file validates"
        )
    # the first line of the import error's note: why the last valid version is not used (its own errors follow there)
    why = decision.notes.get(shown, f"{NOT_RUN_MARKER} its last valid version ({snap.describe()}) is not used.")
    why = why.removeprefix(NOT_RUN_MARKER).strip().splitlines()[0].rstrip(":")
    return f"{shown} is invalid, and Airflow does not run its last valid version either: {why}"
