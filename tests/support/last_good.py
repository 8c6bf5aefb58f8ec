"""A copy of pipelines/ to break and heal, parsed as the DAG processor parses it: for the tests of lastgood and pipeline_watch."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from adclick_ops.render import render

from tests.support import PROJECT
from tests.support.pipeline_mistakes import LAB2


def copy_pipelines(tmp_path: Path) -> Path:
    """A copy of pipelines/ as written (the mistakes edit its text), outputs in the test's folders."""
    dest = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "pipelines", dest)
    (tmp_path / "dags" / "data").mkdir(parents=True)
    shutil.copy(PROJECT / "dags" / "data" / "advertising.csv", tmp_path / "dags" / "data" / "advertising.csv")
    text = (dest / LAB2).read_text()
    for old, new in (
        ("model_dir: model\n", f"model_dir: {tmp_path / 'model'}\n"),
        ("artifacts_root: runs\n", f"artifacts_root: {tmp_path / 'runs'}\n"),
    ):
        assert old in text
        text = text.replace(old, new)
    (dest / LAB2).write_text(text)
    return dest


def parse(pipelines: Path) -> tuple[dict, dict[str, str]]:
    """Render `pipelines` as the DAG processor does: inside a DagBag's file import. (DAGs, import errors by file name.)"""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(pipelines), collect_dags=False)
    rendered: dict = {}

    def process_file(self) -> None:  # the DagBag's frame on the stack, as in DagBag.process_file
        render(rendered, pipelines)

    process_file(bag)
    return rendered, {os.path.basename(k): v for k, v in bag.import_errors.items()}


def break_file(path: Path, old: str | None, new: str | bytes) -> None:
    """Replace `old` by `new` in the file (all of it by `new` when `old` is None; bytes: the whole file)."""
    if isinstance(new, bytes):
        path.write_bytes(new)
    elif old is None:
        path.write_text(new)
    else:
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
