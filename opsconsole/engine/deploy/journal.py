"""A deploy's progress, written durably before each step that changes containers, so a deploy cut
short (the process killed, the machine restarted) is finished by the next one: rolled back to the
`:rollback` image unless the new version had already passed its checks.

One JSON file per service under <workspace>/deploys/, replaced atomically; holds image references
and IDs, never an environment value. With a store (the engine's), every write is also recorded there
as the deploy's row (with the steps so far and their times), so every console on that store sees the
deploy as it goes; the file stays the local crash record (written first, and read first by a resume:
it needs no database), the store's row is read when the file is gone. A store that cannot be written
or read does not stop a deploy: the next write records the whole state again, and the report says the
progress was not recorded (`store_error`).
The lock is the file's (one deploy of a service at a time on this host)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..fsutil import write_atomic
from .model import DeployError

if TYPE_CHECKING:
    from ..store import Store
    from .model import DeployReport

PREPARED = "prepared"
STOPPING_OLD = "stopping_old"
STARTED_NEW = "started_new"
ROLLING_BACK = "rolling_back"
DONE = "done"
UNFINISHED = (STOPPING_OLD, STARTED_NEW, ROLLING_BACK)
"""Phases in which the service may be running neither version healthily: a resume rolls back."""


def lock_name(service: str) -> str:
    """The store-wide lock one deploy of `service` holds (Store.exclusive)."""
    return f"deploy:{service}"


class Journal:
    def __init__(self, workspace: Path, service: str, store: Store | None = None) -> None:
        self.dir = Path(workspace) / "deploys"
        self.path = self.dir / f"{service}.json"
        self.service = service
        self.data: dict[str, Any] = {}
        self.store = store
        self.report: DeployReport | None = None
        """The deploy's report, whose steps (and outcome, once known) go into the store's row."""
        self.store_error: str | None = None
        self.lock_note: str | None = None
        """Set when the store could not be asked for the team's deploy lock (locked())."""

    def read(self) -> dict[str, Any] | None:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self._stored()
        except (OSError, ValueError) as exc:
            raise DeployError(f"deploy journal {self.path}: unreadable ({exc})") from exc
        return loaded if isinstance(loaded, dict) else None

    def _stored(self) -> dict[str, Any] | None:
        if self.store is None:
            return None
        from ..store import StoreError

        try:
            with self.store.read() as tx:
                found = tx.list_deploys(self.service, limit=1)
        except StoreError as exc:  # the file (none here) is the local record: nothing to resume
            self.store_error = str(exc)
            return None
        if not found:
            return None
        state = dict(found[0])
        for key in ("service", "updated_at", "steps", "strategy", "outcome_code", "message"):
            state.pop(key, None)
        return state

    def write(self, **changes: Any) -> None:
        self.data.update(changes)
        write_atomic(self.path, json.dumps(self.data, sort_keys=True).encode())
        self.record()

    def record(self, final: bool = False) -> None:
        """The deploy's row in the store (when there is one and the deploy has an id): the journal's
        data, the report's steps with their times, and at the end the outcome and message."""
        if self.store is None or not self.data.get("id"):
            return
        from ..store import StoreError

        row: dict[str, Any] = {**self.data, "service": self.service}
        row.setdefault("phase", PREPARED)
        report = self.report
        if report is not None:
            row.update(
                steps=[s.to_dict() for s in report.steps],
                strategy=report.strategy,
                rollback_image=report.rollback_image,
                previous_image_id=self.data.get("previous_image_id", report.previous_image),
            )
            row.setdefault("image", report.image)
            row["started_at"] = report.started_at  # the deploy's start (its tests and build included)
            if final:
                row.update(
                    outcome_code=report.code,
                    report_outcome=report.outcome.name.lower(),
                    message=report.message,
                    finished_at=report.finished_at,
                    resumed=report.resumed,
                )
        try:
            with self.store.transaction() as tx:
                before = tx.get_deploy(str(row["id"])) or {}
                tx.save_deploy({**before, **row}, time.time())
        except StoreError as exc:
            self.store_error = str(exc)
        else:
            self.store_error = None

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
        """One deploy of a service at a time: across this host's processes (a file lock), and on a
        shared store across every host of the team (the store's lock "deploy:SERVICE", which a
        PostgreSQL store holds as an advisory lock for the deploy's duration). A store that cannot
        be asked leaves the host's lock alone in charge, and `lock_note` says so."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / f"{self.path.stem}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise DeployError(f"another deploy of {self.path.stem} is running") from exc
            if self.store is None:
                yield
                return
            from ..store import StoreError

            with ExitStack() as stack:
                try:
                    holder = stack.enter_context(self.store.exclusive(lock_name(self.service)))
                except StoreError as exc:
                    # As with its progress, a store that is down does not stop a deploy (the host's
                    # lock still holds): the report says the team's lock was not taken.
                    holder = None
                    self.lock_note = f"the team's deploy lock was not taken, only this host's: {exc}"
                if holder is not None:
                    raise DeployError(f"another deploy of {self.service} is running ({holder})")
                yield
        finally:
            os.close(fd)
