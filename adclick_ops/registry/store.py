"""The few storage operations the registry needs, on a local folder or an object store.

Besides reading and writing whole files it needs two that make concurrent runs safe: `create`
(write only if the name is free: how a version number is claimed) and `replace_if` (write only if
the file is still the one read: how the champion pointer moves). A local folder does them with a
hard link and a lock file; S3 with conditional PUTs (If-None-Match, If-Match).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adclick_ops.artifacts import (
    _HOST,
    StorageFullError,
    as_path,
    sweep_temporaries,
    write_bytes_atomic,
)
from adclick_ops.config.paths import kind

LOCK_NAME = ".lock"
MAX_ASIDE = 100  # damaged files kept under one name and its numbered variants
MAX_JSON_BYTES = 64 << 20  # a model card or champion.json: thousands of events stay far below


def read_limit(name: str) -> int:
    """The most bytes a registry file may hold: a model file (models/...) at most MAX_BYTES, any other (JSON) 64 MiB."""
    from adclick_ops.registry.serialization import MAX_BYTES

    return MAX_BYTES if name.startswith("models/") else MAX_JSON_BYTES


def _refuse(where: Any, problem: str) -> Exception:
    from adclick_ops.registry.registry import DamagedRegistryError  # here: registry.py imports this module

    return DamagedRegistryError(
        f"{where}: {problem}; the registry keeps only regular files it wrote: move it away and restore the file from a backup",
        problem,
    )


def _open_regular(path: Path, follow_links: bool, refused: Callable[[str], Exception]) -> int | None:
    """A descriptor of the regular file at `path`, None when there is none; anything else refused by its directory
    entry, before it is opened (a FIFO would block, a device could answer without end)."""
    try:
        st = os.stat(path) if follow_links else os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise refused("not a regular file but a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise refused(f"not a regular file but {kind(st.st_mode)}")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0) | (0 if follow_links else os.O_NOFOLLOW)
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # became a socket since its entry was read
            raise refused("not a regular file but a socket") from None
        if exc.errno == errno.ELOOP and not follow_links:  # became a link since its entry was read
            raise refused("not a regular file but a symbolic link") from None
        raise


def read_local_file(path: Path, limit: int, *, follow_links: bool = True, refuse: Callable[[str], Exception] | None = None) -> bytes | None:
    """The bytes of the regular file at `path`, None when there is none; never blocks (a FIFO) nor reads without end
    (a device): refused unless a regular file of at most `limit` bytes, told by its directory entry before it is
    opened, then opened without blocking. `follow_links` False refuses a symbolic link; `refuse(problem)` makes the
    exception raised (by default a DamagedRegistryError saying the registry keeps only regular files)."""

    def refused(problem: str) -> Exception:
        return refuse(problem) if refuse is not None else _refuse(path, problem)

    fd = _open_regular(path, follow_links, refused)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)  # what was opened: the entry may have been replaced since it was read
        if not stat.S_ISREG(st.st_mode):
            raise refused(f"not a regular file but {kind(st.st_mode)}")
        if st.st_size > limit:
            raise refused(f"{st.st_size:,} bytes, more than such a file ever holds ({limit:,})")
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 24, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew while being read
                raise refused(f"more than {limit:,} bytes, more than such a file ever holds")
        return b"".join(chunks)
    finally:
        os.close(fd)


class LocalStore:
    """A folder on this machine's disk (or a shared one that honours hard links and flock)."""

    atomic = True

    def __init__(self, root: Path):
        self.root = root

    def __str__(self) -> str:
        return str(self.root)

    def path(self, name: str) -> Path:
        return self.root / name

    def read(self, name: str) -> bytes | None:
        """The file's bytes, None when there is none; DamagedRegistryError for a FIFO, a device, a folder or a file
        larger than such a file ever is (read_limit), never a read that blocks or does not end."""
        return read_local_file(self.path(name), read_limit(name))

    def read_tagged(self, name: str) -> tuple[bytes | None, str | None]:
        data = self.read(name)
        return data, (None if data is None else hashlib.sha256(data).hexdigest())

    def change_tag(self, name: str) -> str | None:
        """Cheap: changes whenever the file is replaced (a new inode each time)."""
        try:
            st = self.path(name).stat()
        except FileNotFoundError:
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def write(self, name: str, data: bytes) -> None:
        write_bytes_atomic(self.path(name), data)

    def create(self, name: str, data: bytes) -> bool:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=target.parent,
            prefix=f".{target.name}.{_HOST}.{os.getpid()}.",
            suffix=".tmp",
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, target)  # fails if the name is taken: the claim is atomic
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            if exc.errno in (28, 122):  # ENOSPC, EDQUOT
                raise StorageFullError(
                    exc.errno,
                    f"{target}: no space left on the device while writing {len(data):,} bytes",
                ) from exc
            raise
        finally:
            os.unlink(tmp)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_NAME, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def replace_if(self, name: str, data: bytes, tag: str | None) -> bool:
        with self._locked():
            if self.read_tagged(name)[1] != tag:
                return False
            self.write(name, data)
            return True

    def replace_keeping(self, name: str, aside: str, make: Callable[[str], bytes], still: Callable[[], bool]) -> str | None:
        """While `still()` holds (under the lock): keep whatever is at `name` as `aside` (or `aside`-2, -3...: never
        over another file), then write `make(kept name)` as `name`; the name it is kept as, None when `still()` no
        longer holds. Nothing at `name` is opened, read or removed: a file, a link, a FIFO or a socket gets a second
        name (a hard link) and is then replaced, so readers never find `name` missing; a folder is renamed with all
        it holds."""
        with self._locked():
            if not still():
                return None
            source = self.path(name)
            is_folder = stat.S_ISDIR(os.lstat(source).st_mode)
            for n in range(1, MAX_ASIDE + 1):
                kept = aside if n == 1 else f"{aside}-{n}"
                if os.path.lexists(self.path(kept)):
                    continue
                try:
                    if is_folder:
                        os.rename(source, self.path(kept))
                    else:
                        os.link(source, self.path(kept), follow_symlinks=False)
                except FileExistsError:
                    continue
                self.write(name, make(kept))
                return kept
        raise OSError(errno.EEXIST, f"{self.path(aside)}: taken, and so are the {MAX_ASIDE - 1} names after it; move some away")

    def list(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def sweep(self) -> list[str]:
        return sweep_temporaries(self.root)


class ObjectStore:
    """A prefix on an object store through fsspec. Conditional writes are atomic on S3 only."""

    def __init__(self, root: Any):
        self.root = root
        self.fs = root.fs
        self.base = root.path.rstrip("/")
        self.protocol = root.protocol if isinstance(root.protocol, str) else root.protocol[0]
        self.atomic = self.protocol in ("s3", "s3a")
        self._lock = threading.Lock()  # elsewhere: safe between the threads of one process only

    def __str__(self) -> str:
        return str(self.root)

    def key(self, name: str) -> str:
        return f"{self.base}/{name}"

    def path(self, name: str) -> Any:
        return self.root / name

    def read(self, name: str) -> bytes | None:
        limit = read_limit(name)
        try:
            data = self.fs.cat_file(self.key(name), start=0, end=limit + 1)  # never more than one byte past the bound
        except FileNotFoundError:
            return None
        if len(data) > limit:
            raise _refuse(self.path(name), f"more than {limit:,} bytes, more than such a file ever holds")
        return data

    def _etag(self, name: str) -> str | None:
        try:
            info = self.fs.info(self.key(name), refresh=True) if self.atomic else self.fs.info(self.key(name))
        except FileNotFoundError:
            return None
        return info.get("ETag") or info.get("etag")

    def read_tagged(self, name: str) -> tuple[bytes | None, str | None]:
        if not self.atomic:
            data = self.read(name)
            return data, (None if data is None else hashlib.sha256(data).hexdigest())
        # The tag is read before the content: if the object changes in between, the tag is older
        # than the content and the conditional write that follows fails, as it should.
        tag = self._etag(name)
        if tag is None:
            return None, None
        data = self.read(name)
        return data, tag if data is not None else None

    def change_tag(self, name: str) -> str | None:
        return self._etag(name) if self.atomic else self.read_tagged(name)[1]

    def write(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(self.key(name), data)

    def create(self, name: str, data: bytes) -> bool:
        if self.atomic:
            try:
                self.fs.pipe_file(self.key(name), data, mode="create")
            except FileExistsError:
                return False
            return True
        with self._lock:
            if self.fs.exists(self.key(name)):
                return False
            self.fs.pipe_file(self.key(name), data)
            return True

    def replace_if(self, name: str, data: bytes, tag: str | None) -> bool:
        if not self.atomic:
            with self._lock:
                if self.read_tagged(name)[1] != tag:
                    return False
                self.write(name, data)
                return True
        condition = {"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag}
        try:
            self.fs.pipe_file(self.key(name), data, **condition)
        except (FileExistsError, FileNotFoundError):
            return False
        except OSError as exc:
            if "Precondition" in str(exc) or "412" in str(exc) or exc.errno == 22:
                return False
            raise
        self.fs.invalidate_cache(self.key(name))
        return True

    def list(self, prefix: str) -> list[str]:
        try:
            entries = (
                self.fs.ls(self.key(prefix), detail=False, refresh=True) if self.atomic else self.fs.ls(self.key(prefix), detail=False)
            )
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def exists(self, name: str) -> bool:
        return self.fs.exists(self.key(name))

    def sweep(self) -> list[str]:
        return []  # single PUTs leave no temporary objects


def open_store(location: str) -> LocalStore | ObjectStore:
    path = as_path(location)
    if isinstance(path, Path) and not hasattr(path, "protocol"):
        return LocalStore(path)
    return ObjectStore(path)
