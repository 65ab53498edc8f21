"""What a backup target is (from config) and what one run left behind (in the store).

A run's record is the evidence a restore relies on: the archive's sha256 and, for files, one sha256
per member, so a later verification can say which member changed rather than only "corrupt".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    """Written whole and hashed, not verified yet."""
    FAILED = "failed"
    VERIFIED = "verified"
    VERIFY_FAILED = "verify_failed"
    PRUNED = "pruned"
    """Its stored copy was deleted by retention; the record stays."""


GOOD = frozenset({RunStatus.OK, RunStatus.VERIFIED})
"""Runs whose stored copy is believed whole."""
STORED = frozenset({RunStatus.OK, RunStatus.VERIFIED, RunStatus.VERIFY_FAILED})
"""Runs that still have a stored copy (retention may delete it)."""


class Trigger(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    BEFORE_PHASE = "before_phase"
    BEFORE_RESTORE = "before_restore"
    """The safety backup a restore over the originals takes first."""


@dataclass(frozen=True)
class S3Storage:
    """Where a target's copies also go: `s3://bucket/prefix/<run>.<ext>`. Credentials come from
    boto3's usual chain (environment, shared files, instance role), never from the configuration."""

    bucket: str
    prefix: str = ""
    """Key prefix without leading or trailing '/'; "" puts copies at the bucket's top."""
    endpoint: str | None = None
    """An S3-compatible endpoint (http(s)://host[:port]); None: AWS."""
    region: str | None = None

    def key(self, filename: str) -> str:
        return f"{self.prefix}/{filename}" if self.prefix else filename

    def url(self, filename: str) -> str:
        return f"s3://{self.bucket}/{self.key(filename)}"


@dataclass(frozen=True)
class BackupTarget:
    """One `backups:` entry. `kind` files: `paths` (+ the state database, flag files and the
    configuration unless switched off); postgres: `dsn` and where its password comes from."""

    name: str
    kind: str  # files | postgres
    directory: str | None = None
    """Where archives go; None: <workspace>/backups/<name>."""
    s3: S3Storage | None = None
    """A second copy in S3, uploaded once the local one is whole; None: local only."""
    paths: tuple[str, ...] = ()
    state: bool = False
    flags: bool = True
    configuration: bool = True
    dsn: str = ""
    password_env: str | None = None
    timeout: float = 3600.0
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    schedule: float | None = None
    """Seconds between scheduled runs; None: manual (and before phases) only."""
    stale_after: float | None = None
    """Newest good backup older than this makes the target stale; None: twice the schedule, or a
    week without one."""
    where: str = ""

    @property
    def stale_limit(self) -> float:
        if self.stale_after is not None:
            return self.stale_after
        return 2 * self.schedule if self.schedule else 7 * 86400.0


@dataclass(frozen=True)
class Member:
    """One archive member as written: name inside the archive, size, sha256 (files only)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BackupRun:
    id: str
    target: str
    kind: str
    trigger: Trigger
    actor: str
    started_at: float
    status: RunStatus = RunStatus.RUNNING
    ended_at: float | None = None
    size: int = 0
    sha256: str = ""
    locations: tuple[str, ...] = ()
    reason: str = ""
    """Why it failed, or what it was taken for (a phase, a restore)."""
    error_kind: str = ""
    members: tuple[Member, ...] = ()
    row_counts: dict[str, int] = field(default_factory=dict)
    verified_at: float | None = None
    verified_how: str = ""
    verify_result: str = ""
    restore_tested_at: float | None = None
    in_use_by: str = ""
    """Set while a restore reads this run's copy: retention leaves it alone."""
    version: int = 0

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def doc(self) -> dict[str, Any]:
        """A JSON-able summary (the CLI's --json, the audit record)."""
        return {
            "id": self.id,
            "target": self.target,
            "kind": self.kind,
            "trigger": str(self.trigger),
            "actor": self.actor,
            "status": str(self.status),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": self.duration,
            "size": self.size,
            "sha256": self.sha256,
            "locations": list(self.locations),
            "reason": self.reason,
            "error_kind": self.error_kind,
            "members": len(self.members),
            "row_counts": dict(self.row_counts),
            "verified_at": self.verified_at,
            "verified_how": self.verified_how,
            "verify_result": self.verify_result,
            "restore_tested_at": self.restore_tested_at,
        }


class Restorability(StrEnum):
    OK = "ok"
    STALE = "stale"
    UNVERIFIED = "unverified"
    FAILING = "failing"


@dataclass(frozen=True)
class TargetStatus:
    target: str
    state: Restorability
    why: str
    newest: BackupRun | None = None


@dataclass(frozen=True)
class RetentionDecision:
    run: BackupRun
    keep: bool
    why: str


@dataclass(frozen=True)
class RestoreResult:
    target: str
    run_id: str
    into: str
    """The directory or database restored into."""
    overwrite: bool
    safety_backup: str | None = None
    """The id of the backup taken before an overwrite."""
    notes: tuple[str, ...] = ()


_COLUMNS = ("id", "target", "trigger", "actor", "status", "started_at", "ended_at", "version")
"""What the backup_runs table holds in columns; the rest of the record is JSON in `body`."""


def run_to_body(run: BackupRun) -> dict[str, Any]:
    return {
        "kind": run.kind,
        "size": run.size,
        "sha256": run.sha256,
        "locations": list(run.locations),
        "reason": run.reason,
        "error_kind": run.error_kind,
        "members": [[m.name, m.size, m.sha256] for m in run.members],
        "row_counts": dict(run.row_counts),
        "verified_at": run.verified_at,
        "verified_how": run.verified_how,
        "verify_result": run.verify_result,
        "restore_tested_at": run.restore_tested_at,
        "in_use_by": run.in_use_by,
    }


def run_from_row(
    id: str,
    target: str,
    trigger: str,
    actor: str,
    status: str,
    started_at: float,
    ended_at: float | None,
    version: int,
    body: dict[str, Any],
) -> BackupRun:
    return BackupRun(
        id=id,
        target=target,
        kind=str(body.get("kind", "")),
        trigger=Trigger(trigger),
        actor=actor,
        started_at=float(started_at),
        status=RunStatus(status),
        ended_at=None if ended_at is None else float(ended_at),
        size=int(body.get("size", 0)),
        sha256=str(body.get("sha256", "")),
        locations=tuple(body.get("locations", ())),
        reason=str(body.get("reason", "")),
        error_kind=str(body.get("error_kind", "")),
        members=tuple(Member(n, int(s), h) for n, s, h in body.get("members", ())),
        row_counts={str(k): int(v) for k, v in body.get("row_counts", {}).items()},
        verified_at=body.get("verified_at"),
        verified_how=str(body.get("verified_how", "")),
        verify_result=str(body.get("verify_result", "")),
        restore_tested_at=body.get("restore_tested_at"),
        in_use_by=str(body.get("in_use_by", "")),
        version=int(version),
    )
