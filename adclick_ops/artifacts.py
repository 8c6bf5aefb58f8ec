"""Where files go: the run-scoped working folder, the promoted model, and how both are written.

Working files of a run live in `<artifacts_root>/<dag_id>/<run_id>/`, so two runs at once never
share one. The artifacts root is a local path or a URI (s3://, gs://, memory://, ... through
fsspec), so that workers on several hosts can share it. Arrays and the fitted scalers go through one
serializer (adclick_ops.workfiles: `.npz` of numbers, read with `allow_pickle=False`) and models are
ONNX files, checked before onnxruntime scores them (registry.serialization): reading never runs code.
Every write replaces its target whole.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any


def as_path(location: str) -> Any:
    """A pathlib-like object for a local path or an fsspec URI."""
    from adclick_ops.config.locations import parse_location

    where = parse_location(str(location))
    if not where.local:
        from upath import UPath

        return UPath(str(where))
    return Path(where.path)


def _is_local(path: Any) -> bool:
    # UPath subclasses pathlib.Path; only a plain Path is on this machine's disk
    return isinstance(path, Path) and not hasattr(path, "protocol")


# A temporary file names its writer (host and process), so that a later run can tell the leftovers
# of a killed writer from a file another process is still writing.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
STALE_AFTER_SECONDS = 24 * 3600  # a temporary file of another host is left alone for a day


class StorageFullError(OSError):
    """The disk (or quota) is full; the message names the file that could not be written."""


def write_bytes_atomic(path: Any, data: bytes) -> None:
    """Write `data` so that readers see the old file or the new one, never half of it."""
    if not _is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # one object PUT: atomic on object stores
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(
                exc.errno, f"{path}: no space left on the device (or quota) while writing {len(data):,} bytes; free some space there"
            ) from exc
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_temporaries(folder: Any, recursive: bool = True) -> list[str]:
    """Remove temporary files left by writers that died (killed half-way); returns what was removed.

    A file of this host is removed when its process is gone; one of another host (a shared disk)
    only once it is a day old, since that process cannot be asked.
    """
    if not _is_local(folder) or not folder.is_dir():
        return []
    removed = []
    candidates = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    for tmp in candidates:
        match = _TEMP.match(tmp.name)
        if not match:
            continue
        try:
            if match["host"] == _HOST:
                stale = not _alive(int(match["pid"]))
            else:
                stale = time.time() - tmp.stat().st_mtime > STALE_AFTER_SECONDS
            if stale:
                tmp.unlink()
                removed.append(str(tmp))
        except FileNotFoundError:  # its writer finished meanwhile
            continue
    return removed


PREPROCESSING = "preprocessing.npz"  # data_preprocessing_task's fitted scalers, for build_save_model_task


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
        """Write `<name>.npz` through the one serializer of working files (adclick_ops.workfiles)."""
        from adclick_ops.workfiles import dump_arrays

        target = self.path(f"{name}.npz")
        write_bytes_atomic(target, dump_arrays(f"{name}.npz", arrays))
        return str(target)

    def _read(self, name: str) -> bytes:
        target = self.path(name)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{target}: working file of an earlier task is missing; run the DAG from its first task") from None

    def load_arrays(self, name: str) -> dict[str, Any]:
        from adclick_ops.workfiles import load_arrays

        return load_arrays(self._read(f"{name}.npz"), str(self.path(f"{name}.npz")))

    def save_preprocessing(self, preprocessor: Any) -> str:
        """Write the fitted preprocessing as `preprocessing.npz`, its numbers (adclick_ops.workfiles)."""
        from adclick_ops.workfiles import dump_preprocessing

        target = self.path(PREPROCESSING)
        write_bytes_atomic(target, dump_preprocessing(PREPROCESSING, preprocessor))
        return str(target)

    def load_preprocessing(self, scalers: list[Any]) -> Any:
        """The fitted preprocessing save_preprocessing wrote, set back on `scalers`."""
        from adclick_ops.workfiles import load_preprocessing

        return load_preprocessing(self._read(PREPROCESSING), str(self.path(PREPROCESSING)), scalers)

    def save_json(self, name: str, value: Any) -> str:
        target = self.path(name)
        write_bytes_atomic(target, json.dumps(value, indent=2).encode())
        return str(target)

    def load_json(self, name: str) -> Any:
        from adclick_ops import jsonio

        return jsonio.load_bytes(self._read(name), name, strict_numbers=False)

    @property
    def candidate_model(self) -> Any:
        return self.path(self.model_file)

    @property
    def promoted_model(self) -> Any:
        return self.model_dir / self.model_file


def read_model_file(path: Any, allowed_roots: list[Any]) -> bytes:
    """The bytes of a saved model file; only from the model directory or the run's own folder."""
    if _is_local(path):
        resolved = os.path.realpath(path)
        roots = [os.path.realpath(r) for r in allowed_roots if _is_local(r)]
        if not any(resolved == r or resolved.startswith(r + os.sep) for r in roots):
            raise PermissionError(f"{path}: models are loaded only from {', '.join(map(str, allowed_roots))}")
    return path.read_bytes()


def load_model_file(path: Any, allowed_roots: list[Any]) -> Any:
    """Load a saved model (an ONNX file, checked, scored by onnxruntime); only from the model directory or the run's own folder."""
    from adclick_ops.registry.serialization import load_model_bytes

    return load_model_bytes(read_model_file(path, allowed_roots), str(path))


def file_sha256(location: str) -> str:
    """sha256 of a local file or an object, read in chunks."""
    digest = hashlib.sha256()
    with as_path(location).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
