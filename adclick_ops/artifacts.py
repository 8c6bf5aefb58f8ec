"""Where files go: the run-scoped working folder, the promoted model, and how both are written.

Working files of a run live in `<artifacts_root>/<dag_id>/<run_id>/`, so two runs at once never
share one. The artifacts root is a local path or a URI (s3://, gs://, memory://, ... through
fsspec), so that workers on several hosts can share it. Arrays are stored as `.npz` read with
`allow_pickle=False`: reading working data never runs code. Every write replaces its target whole.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def as_path(location: str) -> Any:
    """A pathlib-like object for a local path or an fsspec URI."""
    if "://" in location and not location.startswith("file://"):
        from upath import UPath

        return UPath(location)
    return Path(location.removeprefix("file://"))


def _is_local(path: Any) -> bool:
    # UPath subclasses pathlib.Path; only a plain Path is on this machine's disk
    return isinstance(path, Path) and not hasattr(path, "protocol")


def write_bytes_atomic(path: Any, data: bytes) -> None:
    """Write `data` so that readers see the old file or the new one, never half of it."""
    if not _is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # one object PUT: atomic on object stores
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safe_run_id(run_id: str) -> str:
    """A run id as a folder name: Airflow's ids carry ':' and '+', which some stores dislike."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._")
    return cleaned or "run"


class RunFiles:
    """The working files of one run of one DAG, and where its model goes."""

    def __init__(self, artifacts_root: str, dag_id: str, run_id: str, *, model_dir: str, model_file: str):
        self.run_id = run_id
        self.folder = as_path(artifacts_root) / dag_id / safe_run_id(run_id)
        self.model_dir = as_path(model_dir)
        self.model_file = model_file

    def path(self, name: str) -> Any:
        return self.folder / name

    def save_arrays(self, name: str, **arrays: Any) -> str:
        import numpy as np

        for key, value in arrays.items():
            if np.asarray(value).dtype.hasobject:
                # np.savez would pickle it, and load_arrays refuses pickles: fail where the mistake is
                raise TypeError(f"{name}.npz: array {key!r} holds Python objects; working files hold numbers only")
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        target = self.path(f"{name}.npz")
        write_bytes_atomic(target, buffer.getvalue())
        return str(target)

    def load_arrays(self, name: str) -> dict[str, Any]:
        import numpy as np

        target = self.path(f"{name}.npz")
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{target}: working file of an earlier task is missing; run the DAG from its first task") from None
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}

    @property
    def candidate_model(self) -> Any:
        return self.path(self.model_file)

    @property
    def promoted_model(self) -> Any:
        return self.model_dir / self.model_file


def dump_model(model: Any) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def load_model_file(path: Any, allowed_roots: list[Any]) -> Any:
    """Load a saved model; only from the model directory or the run's own folder."""
    import joblib

    resolved = str(path)
    if _is_local(path):
        resolved = os.path.realpath(path)
        roots = [os.path.realpath(r) for r in allowed_roots if _is_local(r)]
        if not any(resolved == r or resolved.startswith(r + os.sep) for r in roots):
            raise PermissionError(f"{path}: models are loaded only from {', '.join(map(str, allowed_roots))}")
    return joblib.load(io.BytesIO(path.read_bytes()))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
