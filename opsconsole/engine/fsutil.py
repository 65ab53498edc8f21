"""Crash-safe file writing.

Flag files are read by other processes at any moment and the kill switch must leave them in the safe
state even if the machine loses power right after. So a file is never written in place: the bytes go
to a temporary file in the same directory (same filesystem, so the rename is atomic), are fsynced,
renamed over the target, and then the directory is fsynced so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from pathlib import Path

TYPE_CHECKING = False  # not typing's: see engine/__init__.py

if TYPE_CHECKING:
    from typing import Any


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old content or the new, never a mix.
    Creates missing parent directories; keeps an existing file's permission bits. On any error the
    temporary file is removed and the old file is left as it was."""
    path = Path(path)
    # 0o666 through the umask gives the permissions a plain open() would, not mkstemp's 0o600:
    # services reading the flag file may run as another user.
    tmp = _stage(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_atomic_many(items: list[tuple[Path, bytes]]) -> list[tuple[Path, OSError]]:
    """Replace several files, each atomically, with one directory fsync per directory rather than
    one per file (the kill switch writes up to three files per environment and counts milliseconds).
    Every file is tried; returns the ones that failed with their error, the others are durable."""
    failed: list[tuple[Path, OSError]] = []
    staged: list[tuple[Path, Path]] = []
    for path, data in items:
        path = Path(path)
        try:
            staged.append((_stage(path, data), path))
        except OSError as exc:
            failed.append((path, exc))
    dirs: dict[Path, None] = {}
    for tmp, path in staged:
        try:
            os.replace(tmp, path)
            dirs[path.parent] = None
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            failed.append((path, exc))
    for directory in dirs:
        try:
            fsync_dir(directory)
        except OSError as exc:
            failed.append((directory, exc))
    return failed


def _stage(path: Path, data: bytes) -> Path:
    """`data` in a fsynced temporary file beside `path`, ready to be renamed over it."""
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    # os.urandom, not secrets: importing secrets costs the kill switch's fast path milliseconds.
    tmp = parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def fsync_dir(directory: Path) -> None:
    """Make a rename or creation in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems cannot fsync a directory; the rename is still atomic there.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def json_bytes(obj: Any) -> bytes:
    """Pretty, key-sorted JSON with a trailing newline: stable output that diffs well."""
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json_bytes(obj))
