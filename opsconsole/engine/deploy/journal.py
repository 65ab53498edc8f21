"""A deploy's progress, written durably before each step that changes containers, so a deploy cut
short (the process killed, the machine restarted) is finished by the next one: rolled back to the
`:rollback` image unless the new version had already passed its checks.

One JSON file per service under <workspace>/deploys/, replaced atomically; holds image references
and IDs, never an environment value."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..fsutil import write_atomic
from .model import DeployError

PREPARED = "prepared"
STOPPING_OLD = "stopping_old"
STARTED_NEW = "started_new"
ROLLING_BACK = "rolling_back"
DONE = "done"
UNFINISHED = (STOPPING_OLD, STARTED_NEW, ROLLING_BACK)
"""Phases in which the service may be running neither version healthily: a resume rolls back."""


class Journal:
    def __init__(self, workspace: Path, service: str) -> None:
        self.dir = Path(workspace) / "deploys"
        self.path = self.dir / f"{service}.json"
        self.data: dict[str, Any] = {}

    def read(self) -> dict[str, Any] | None:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DeployError(f"deploy journal {self.path}: unreadable ({exc})") from exc
        return loaded if isinstance(loaded, dict) else None

    def write(self, **changes: Any) -> None:
        self.data.update(changes)
        write_atomic(self.path, json.dumps(self.data, sort_keys=True).encode())

    def busy(self) -> bool:
        """Whether a deploy of this service holds the lock now (in this process or another)."""
        try:
            fd = os.open(self.dir / f"{self.path.stem}.lock", os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One deploy of a service at a time (across processes)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / f"{self.path.stem}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise DeployError(f"another deploy of {self.path.stem} is running") from exc
            yield
        finally:
            os.close(fd)
