"""File system faults as one line that names the path: for the pipelines folder and for datasets.

Every place that looks at the pipelines folder (validate, plan, graph, the DAG file) and the dataset
reader go through `folder_entries` and `regular_file`, so an unreadable, missing or looping path,
a name that is too long, a device or a FIFO, gives the same sentence everywhere, never a traceback
and never a read that blocks (a FIFO) or does not end (a device).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from adclick_ops.config.errors import ConfigError, Issue

_WORDS = {
    errno.ENOENT: "not found",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "name too long for the file system (usually at most 255 bytes a name, 4096 a path)",
    errno.ELOOP: "too many levels of symbolic links (a link loop?)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EIO: "input/output error",
}


class PathFault(ConfigError):
    """A path that cannot be used as asked; `str()` is one line: `<path>: <problem>`."""

    def __init__(self, path: str | os.PathLike[str], problem: str, cause: str = "other"):
        # cause: "missing", "denied", "folder" (a folder where a file was asked), "special" (FIFO, device, socket) or "other"
        self.path, self.problem, self.cause = str(path), problem, cause
        super().__init__([Issue(self.path, None, "", problem)])

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def os_problem(exc: OSError) -> str:
    """An OSError in words, without the path (the caller names it) and without the Python class."""
    if exc.errno in _WORDS:
        return _WORDS[exc.errno]
    return (exc.strerror or type(exc).__name__).lower()


def _cause(exc: OSError) -> str:
    return {errno.ENOENT: "missing", errno.EACCES: "denied", errno.EPERM: "denied"}.get(exc.errno or 0, "other")


def kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a file"


def stat_of(path: Path, what: str) -> os.stat_result:
    """The path's stat, links followed; PathFault names the path and says why there is none."""
    try:
        return path.stat()
    except OSError as exc:
        if exc.errno == errno.ENOENT and path.is_symlink():
            raise PathFault(path, f"{what}: a symbolic link to {os.readlink(path)!r}, which does not exist") from None
        raise PathFault(path, f"{what}: {os_problem(exc)}", _cause(exc)) from None
    except ValueError as exc:  # an embedded NUL byte
        raise PathFault(path, f"{what}: {exc}") from None


def folder_entries(path: str | os.PathLike[str], what: str = "pipelines folder") -> list[Path]:
    """The entries of a folder, sorted; PathFault when it is not a readable folder."""
    p = Path(path)
    mode = stat_of(p, what).st_mode
    if not stat.S_ISDIR(mode):
        raise PathFault(p, f"{what}: not a folder but {kind(mode)}")
    try:
        return sorted(p.iterdir())
    except OSError as exc:
        raise PathFault(p, f"{what}: {os_problem(exc)}", _cause(exc)) from None


def regular_file(path: str | os.PathLike[str], what: str = "file") -> os.stat_result:
    """The file's stat; PathFault unless it is a regular file that can be opened for reading."""
    p = Path(path)
    st = stat_of(p, what)
    if not stat.S_ISREG(st.st_mode):
        hint = "; name the file itself" if stat.S_ISDIR(st.st_mode) else "; expected a regular file"
        raise PathFault(p, f"{what}: {kind(st.st_mode)}, not a file{hint}", "folder" if stat.S_ISDIR(st.st_mode) else "special")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise PathFault(p, f"{what}: {os_problem(exc)}", _cause(exc)) from None
    return st
