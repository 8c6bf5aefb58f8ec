"""Whether the pipeline files are healthy, as Airflow's REST API tells: import errors, and the DAG's own state.

A pipeline file that stops validating is filed by the DAG file as an import error of its own, which
says whether the file's last valid version runs instead (`adclick_ops.lastgood`). Airflow removes
import errors of files outside its DAG bundle each time it refreshes the bundle, and files them again
at the next parse; the DAG kept from a last valid version says so durably (its tag `last-good`, its
docs), so both are read. A DAG that Airflow marks stale, or does not know, is reported too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from adclick_ops.airflow_api import AirflowClient, dag_details, import_errors
from adclick_ops.config.vocabulary import INVALID_FILE_HEADLINE, LAST_GOOD_DOCS_OPENING, LAST_GOOD_TAG, NOT_RUN_MARKER, RUNS_MARKER

MAX_ERRORS_SHOWN = 5
MAX_LINE_CHARS = 500
_DOCS = re.compile(re.escape(LAST_GOOD_DOCS_OPENING) + r"(?P<file>[^\n]+?)\*\* \((?P<version>[^\n]*?)\)\.")
_FENCED = re.compile(r"(?P<fence>`{3,})text\n(?P<body>.*?)\n(?P=fence)", re.S)


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


def _from_docs(doc_md: str) -> BrokenFile | None:
    """What the docs of a DAG kept from a last valid version say: its file, the version, the first errors."""
    opening = _DOCS.match(doc_md or "")
    if opening is None:
        return None
    fenced = _FENCED.search(doc_md, opening.end())
    errors = tuple(_line(e) for e in fenced.group("body").splitlines()) if fenced else ()
    return BrokenFile(opening.group("file"), errors, runs_instead=_line(opening.group("version")))


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
