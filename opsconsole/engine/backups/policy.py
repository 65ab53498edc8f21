"""Retention and restorability: pure decisions over run records (no I/O, no clock of their own).

Retention follows the usual keep-last / keep-daily / keep-weekly rules (restic's meaning: the newest
backup of each of the last N days, or ISO weeks, that have one), over good backups only; a copy that
failed verification is never what a rule keeps. Two protections come before any rule: the newest
verified backup, and any backup a restore is reading.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .model import (
    GOOD,
    STORED,
    BackupRun,
    BackupTarget,
    Restorability,
    RetentionDecision,
    RunStatus,
    TargetStatus,
)


def retention(
    runs: Sequence[BackupRun],
    keep_last: int | None,
    keep_daily: int | None,
    keep_weekly: int | None,
) -> list[RetentionDecision]:
    """One decision per run that still has a stored copy, newest first, each with why."""
    stored = sorted((r for r in runs if r.status in STORED), key=lambda r: (r.started_at, r.id), reverse=True)
    reasons: dict[str, list[str]] = {r.id: [] for r in stored}
    good = [r for r in stored if r.status in GOOD]
    verified = [r for r in good if r.status == RunStatus.VERIFIED]
    if verified:
        reasons[verified[0].id].append("newest verified backup")
    for r in stored:
        if r.in_use_by:
            reasons[r.id].append(f"in use by a restore ({r.in_use_by})")
    if keep_last is None and keep_daily is None and keep_weekly is None:
        for r in stored:
            reasons[r.id].append("no retention rule set")
    for i, r in enumerate(good[: keep_last or 0]):
        reasons[r.id].append(f"keep_last {keep_last} (#{i + 1})")
    for rule, count, bucket in (
        ("keep_daily", keep_daily, _day),
        ("keep_weekly", keep_weekly, _week),
    ):
        if not count:
            continue
        seen: list[str] = []
        for r in good:
            b = bucket(r.started_at)
            if b in seen:
                continue
            if len(seen) == count:
                break
            seen.append(b)
            reasons[r.id].append(f"{rule} {count} ({b})")
    out = []
    for r in stored:
        why = reasons[r.id]
        if why:
            out.append(RetentionDecision(r, True, "; ".join(why)))
        elif r.status == RunStatus.VERIFY_FAILED:
            out.append(RetentionDecision(r, False, "failed verification; no rule keeps a bad copy"))
        else:
            out.append(RetentionDecision(r, False, "outside every rule"))
    return out


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def _week(at: float) -> str:
    return time.strftime("%G-W%V", time.gmtime(at))


def restorability(target: BackupTarget, runs: Sequence[BackupRun], now: float) -> TargetStatus:
    """ok / stale / unverified / failing, with one line saying why. `runs` newest first.

    failing: the latest finished run failed or failed verification (an older good copy is said);
    unverified: there is no good copy, or the newest good one was never verified by a test restore
    (a full read with member checksums counts for files, a scratch restore for PostgreSQL);
    stale: the newest good copy is older than the target's limit; else ok."""
    finished = [r for r in runs if r.status not in (RunStatus.RUNNING, RunStatus.PRUNED)]
    good = [r for r in finished if r.status in GOOD]
    newest_good = good[0] if good else None
    if finished and finished[0].status in (RunStatus.FAILED, RunStatus.VERIFY_FAILED):
        last = finished[0]
        what = "backup" if last.status == RunStatus.FAILED else "verification"
        why = f"last {what} ({last.id}, {_age(now - (last.ended_at or last.started_at))} ago) failed: {last.reason}"
        if newest_good is not None:
            why += f"; newest good copy {newest_good.id} is {_age(now - newest_good.started_at)} old"
        return TargetStatus(target.name, Restorability.FAILING, why, last)
    if newest_good is None:
        return TargetStatus(target.name, Restorability.UNVERIFIED, "no backup yet", None)
    age = now - newest_good.started_at
    if age > target.stale_limit:
        return TargetStatus(
            target.name,
            Restorability.STALE,
            f"newest backup {newest_good.id} is {_age(age)} old (limit {_age(target.stale_limit)})",
            newest_good,
        )
    if newest_good.status != RunStatus.VERIFIED or newest_good.restore_tested_at is None:
        return TargetStatus(
            target.name,
            Restorability.UNVERIFIED,
            f"newest backup {newest_good.id} ({_age(age)} old) has not been verified by a test restore",
            newest_good,
        )
    return TargetStatus(
        target.name,
        Restorability.OK,
        f"newest backup {newest_good.id} is {_age(age)} old, verified {_age(now - (newest_good.verified_at or now))}"
        f" ago ({newest_good.verified_how})",
        newest_good,
    )


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"
