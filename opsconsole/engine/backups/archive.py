"""File archives: write a `.tar.gz` that is either whole or absent, read one back in full, extract it.

Writing goes to a hidden temporary name in the storage directory, is fsynced, then renamed: a crash,
a full disk or an exception leaves no file that looks like a finished backup (the temporary is
removed when we are still alive to do it, and never has the final name). Each member's sha256 is
taken while it is written, so verification can name the member that changed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import BackupError
from .model import Member

CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """A file or directory to archive, under `arcname` inside the archive."""

    path: Path
    arcname: str


@dataclass(frozen=True)
class Written:
    path: Path
    size: int
    sha256: str
    members: tuple[Member, ...]


def arcname_for(path: Path, prefix: str = "files") -> str:
    """/etc/app/conf.yaml -> files/etc/app/conf.yaml: the original location survives in the name."""
    return f"{prefix}/{str(path.absolute()).lstrip('/')}"


def write(dest: Path, sources: Iterable[Source], state_db: Path | None = None) -> Written:
    """Archive `sources` (and a consistent copy of the SQLite database `state_db`) into `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise BackupError("exists", f"{dest} already exists")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    members: list[Member] = []
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for src in sources:
                    _add(tar, src.path, src.arcname, members)
                if state_db is not None:
                    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".state-") as scratch:
                        copy = Path(scratch) / "state.db"
                        _sqlite_copy(state_db, copy)
                        _add(tar, copy, "state/state.db", members)
            raw.flush()
            os.fsync(raw.fileno())
        digest, size = file_sha256(tmp)
        os.rename(tmp, dest)
        _fsync_dir(dest.parent)
        return Written(dest, size, digest, tuple(members))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if not isinstance(exc, Exception):  # interrupted: the caller records it, then it goes on
            raise
        raise _as_backup_error(exc, dest) from exc


def _add(tar: tarfile.TarFile, path: Path, arcname: str, members: list[Member]) -> None:
    if not path.exists() and not path.is_symlink():
        raise BackupError("failed", f"{path}: no such file or directory")
    if path.is_dir() and not path.is_symlink():
        tar.addfile(tar.gettarinfo(str(path), arcname))
        for child in sorted(path.iterdir()):
            _add(tar, child, f"{arcname}/{child.name}", members)
        return
    info = tar.gettarinfo(str(path), arcname)
    if not info.isfile():  # symlinks and the like: kept as they are, nothing to hash
        tar.addfile(info)
        return
    with path.open("rb") as f:
        hashing = _HashingReader(f)
        tar.addfile(info, hashing)
    if hashing.count != info.size:
        raise BackupError("failed", f"{path} changed size while it was archived")
    members.append(Member(arcname, info.size, hashing.digest.hexdigest()))


class _HashingReader(io.RawIOBase):
    def __init__(self, f: io.BufferedReader) -> None:
        self.f = f
        self.digest = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.digest.update(data)
        self.count += len(data)
        return data


def _sqlite_copy(src: Path, dest: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included) through its backup API."""
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
        try:
            target = sqlite3.connect(dest)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise BackupError("failed", f"copying the state database {src}: {exc}") from exc


def file_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def check(path: Path, sha256: str, members: Iterable[Member]) -> str:
    """Re-hash the stored copy, then read every member back and compare its checksum with the
    manifest. Returns what matched (one line); raises BackupError(checksum|corrupt|storage)."""
    if not path.is_file():
        raise BackupError("storage", f"{path} is missing")
    digest, _ = file_sha256(path)
    if digest != sha256:
        raise BackupError(
            "checksum", f"{path.name}: sha256 {digest[:12]}… does not match the record's {sha256[:12]}…"
        )
    expected = {m.name: m for m in members}
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                want = expected.get(info.name)
                if want is None:
                    raise BackupError("checksum", f"member {info.name} is not in the manifest")
                f = tar.extractfile(info)
                assert f is not None
                h = hashlib.sha256()
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                if h.hexdigest() != want.sha256:
                    raise BackupError("checksum", f"member {info.name}: checksum does not match the manifest")
                seen.add(info.name)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise BackupError("corrupt", f"{path.name} cannot be read whole: {exc}") from exc
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError("checksum", f"{len(missing)} member(s) missing, first {missing[0]}")
    return f"{len(seen)} members read, every checksum matches"


def extract(path: Path, into: Path, *, only_prefix: str = "") -> list[str]:
    """Extract the archive (members under `only_prefix`, that prefix removed) into `into`; the
    'data' filter refuses absolute names, `..` and links leaving the directory."""
    names: list[str] = []
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            chosen = []
            for info in tar.getmembers():
                if only_prefix:
                    if not info.name.startswith(only_prefix + "/"):
                        continue
                    info.name = info.name[len(only_prefix) + 1 :]
                chosen.append(info)
                names.append(info.name)
            tar.extractall(into, members=chosen, filter="data")
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise BackupError("corrupt", f"{path.name}: {exc}") from exc
    except OSError as exc:
        raise _as_backup_error(exc, into) from exc
    return names


def _as_backup_error(exc: Exception, where: Path) -> BackupError:
    if isinstance(exc, BackupError):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BackupError("disk_full", f"{where.parent}: no space left on the device")
    if isinstance(exc, OSError):
        return BackupError("storage", f"{where}: {exc.strerror or exc}")
    return BackupError("failed", f"{type(exc).__name__}: {exc}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
