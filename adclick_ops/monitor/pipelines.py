"""Whether the pipeline files are healthy, as Airflow's REST API tells: import errors, and the DAG's own state.

A pipeline file that stops validating is filed by the DAG file as an import error of its own, which
says whether the file's last valid version runs instead (`adclick_ops.lastgood`). Airflow removes
import errors of files outside its DAG bundle each time it refreshes the bundle, and files them again
at the next parse; the DAG kept from a last valid version says so durably (its tag `last-good`, its
docs), so both are read. A DAG that Airflow marks stale, or does not know, is reported too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adclick_ops.airflow_api import AirflowClient, dag_details, import_errors
from adclick_ops.config.vocabulary import INVALID_FILE_HEADLINE, LAST_GOOD_DOCS_OPENING, LAST_GOOD_TAG, NOT_RUN_MARKER, RUNS_MARKER

MAX_ERRORS_SHOWN = 5
MAX_LINE_CHARS = 500
# The docs are Airflow's answer, so of any length and content: they are read by str.find, in one pass each (a
# regular expression with two lazy groups took quadratic time on a long first line), and only so far.
MAX_DOCS_CHARS = 64 * 1024  # of the docs read: what the DAG file writes is a few KB at most
_FILE_END, _VERSION_END, _FENCE, _FENCE_INFO = "** (", ").", "```", "text\n"


def _line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"


@dataclass(frozen=True)
class BrokenFile:
    file: str
    errors: tuple[str, ...]
    runs_instead: str | None = None  # what runs instead, when the file's last valid version does
    note: str | None = None  # why no version of the file runs

    @property
    def last_good_runs(self) -> bool:
        return self.runs_instead is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "errors": list(self.errors),
            "last_good_runs": self.last_good_runs,
            "runs_instead": self.runs_instead,
            "note": self.note,
        }


@dataclass(frozen=True)
class PipelineState:
    dag_id: str
    broken: tuple[BrokenFile, ...] = ()
    dag_found: bool = True
    stale: bool = False
    paused: bool | None = None
    last_good: bool = False  # the DAG runs the last valid version of its file
    problems: tuple[str, ...] = field(default=())

    @property
    def degraded(self) -> bool:
        return bool(self.problems)

    def as_json(self) -> dict[str, Any]:
        return {
            "degraded": self.degraded,
            "problems": list(self.problems),
            "broken_files": [b.as_json() for b in self.broken],
            "dag": {
                "dag_id": self.dag_id,
                "found": self.dag_found,
                "stale": self.stale,
                "paused": self.paused,
                "last_good": self.last_good,
            },
        }


def parse_import_error(filename: str, stack_trace: str) -> BrokenFile:
    """One import error: a pipeline file's (its issues, then what runs instead), or any other file's (its last lines)."""
    lines = [ln for ln in stack_trace.splitlines() if ln.strip()]
    if not lines or lines[0] != INVALID_FILE_HEADLINE:
        return BrokenFile(filename, tuple(_line(ln) for ln in lines[-2:]), note="Airflow cannot import this file")
    body = lines[1:]
    cut = next((i for i, ln in enumerate(body) if ln.startswith((RUNS_MARKER, NOT_RUN_MARKER))), len(body))
    errors, note = body[:cut], " ".join(body[cut:])
    shown = tuple(_line(e) for e in errors[:MAX_ERRORS_SHOWN])
    if len(errors) > MAX_ERRORS_SHOWN:
        shown += (f"... and {len(errors) - MAX_ERRORS_SHOWN} more",)
    if note.startswith(RUNS_MARKER):
        return BrokenFile(filename, shown, runs_instead=_line(note.removeprefix(RUNS_MARKER)))
    return BrokenFile(
        filename, shown, note=_line(note.removeprefix(NOT_RUN_MARKER)) if note else "it never validated: no version of it runs"
    )


def _opening(docs: str) -> tuple[str, str, int] | None:
    """`**Running the last valid version of <file>** (<version>).` on the docs' first line: file, version, where it ends."""
    if not docs.startswith(LAST_GOOD_DOCS_OPENING):
        return None
    start = len(LAST_GOOD_DOCS_OPENING)
    line_end = docs.find("\n", start)
    line_end = len(docs) if line_end < 0 else line_end
    file_end = docs.find(_FILE_END, start + 1, line_end)  # the file's name is one character at least
    if file_end < 0:
        return None
    version_start = file_end + len(_FILE_END)
    version_end = docs.find(_VERSION_END, version_start, line_end)
    if version_end < 0:
        return None
    return docs[start:file_end], docs[version_start:version_end], version_end + len(_VERSION_END)


def _fenced(docs: str, start: int) -> list[str]:
    """The lines of the first ```text block after `start` (its fence three backticks or more), up to the error lines shown."""
    at = docs.find(_FENCE, start)
    while at >= 0:
        info = at + len(_FENCE)
        while info < len(docs) and docs[info] == "`":
            info += 1
        if docs.startswith(_FENCE_INFO, info):
            body_start = info + len(_FENCE_INFO)
            body_end = docs.find("\n" + docs[at:info], body_start)
            return docs[body_start:body_end].splitlines()[: MAX_ERRORS_SHOWN + 1] if body_end >= 0 else []
        at = docs.find(_FENCE, info)  # each backtick is looked at once
    return []


def _from_docs(doc_md: str) -> BrokenFile | None:
    """What the docs of a DAG kept from a last valid version say: its file, the version, the first errors."""
    docs = (doc_md or "")[:MAX_DOCS_CHARS]
    opening = _opening(docs)
    if opening is None:
        return None
    file, version, end = opening
    errors = tuple(_line(e) for e in _fenced(docs, end))
    return BrokenFile(file, errors, runs_instead=_line(version))


def _same_file(a: str, b: str) -> bool:
    """Import errors name files relative to the DAG bundle (../pipelines/x.yaml); the docs as the parser saw them."""
    return a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


def read_state(client: AirflowClient, dag_id: str) -> PipelineState:
    """The pipeline files' state and the DAG's, from Airflow's REST API (raises AirflowUnreachable)."""
    broken = [parse_import_error(e["filename"], str(e.get("stack_trace") or "")) for e in import_errors(client)]
    details = dag_details(client, dag_id)
    problems: list[str] = []
    if details is None:
        state = {"dag_found": False, "stale": False, "paused": None, "last_good": False}
        problems.append(f"Airflow does not know the DAG {dag_id}: no pipeline file declares it now")
    else:
        tags = {t.get("name") if isinstance(t, dict) else t for t in details.get("tags") or []}
        state = {
            "dag_found": True,
            "stale": bool(details.get("is_stale")),
            "paused": details.get("is_paused") if isinstance(details.get("is_paused"), bool) else None,
            "last_good": LAST_GOOD_TAG in tags,
        }
        if state["last_good"]:
            kept = _from_docs(str(details.get("doc_md") or ""))
            if kept is not None and not any(_same_file(b.file, kept.file) for b in broken):
                broken.append(kept)  # between a bundle refresh and the next parse, the docs still say it
        if state["stale"]:
            problems.append(f"Airflow marks {dag_id} stale: no DAG file declares it now, so no run starts")
    for b in broken:
        problems.append(f"{b.file} does not validate; " + ("its last valid version runs" if b.last_good_runs else "no version of it runs"))
    return PipelineState(dag_id, tuple(broken), problems=tuple(problems), **state)
