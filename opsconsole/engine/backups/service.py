"""Backup orchestration: run, verify, prune and restore, each recorded in the store and audited.

A run is recorded `running` before anything is written and finished as `ok` or `failed` in a second
transaction, so a process killed half-way leaves a `running` record that the next look reports as
interrupted, never a copy that looks complete. The stores's write lock is never held while a file is
written or a database is dumped.

PostgreSQL work goes through `postgres.py`, S3 work through `s3.py`; each is imported only when a
target uses it. With `storage.s3` a run uploads its copy once the local one is whole, and lists the
`s3://` location after the local path; verification reads back every stored copy, retention deletes
every copy, and a restore takes the first copy that still matches the record (S3 when the local copy
is gone).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..authz import Forbidden
from ..model import ENGINE_ACTOR, Actor
from ..rollout import Rejected
from ..targets import notify as notifier
from . import archive, policy, s3
from .errors import BackupError
from .model import (
    GOOD,
    STORED,
    BackupRun,
    BackupTarget,
    RestoreResult,
    RetentionDecision,
    RunStatus,
    S3Storage,
    TargetStatus,
    Trigger,
)

if TYPE_CHECKING:
    from ..core import Engine

INTERRUPTED_AFTER = 6 * 3600.0
"""A run still `running` after this long is reported failed (its process died): no dump takes so long
that a live one would be mistaken."""


class BackupService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._buckets: dict[S3Storage, s3.S3] = {}

    # ------------------------------------------------------------------------------ reading

    def target(self, name: str) -> BackupTarget:
        from ..config.issues import suggest

        t = self.engine.config.backups.get(name)
        if t is None:
            raise ValueError(f"no backup target {name!r}{suggest(name, self.engine.config.backups)}")
        return t

    def storage(self, t: BackupTarget) -> Path:
        return Path(t.directory) if t.directory else self.engine.workspace / "backups" / t.name

    def runs(self, target: str | None = None, limit: int | None = None) -> list[BackupRun]:
        if target is not None:
            self.target(target)
        with self.engine.store.read() as tx:
            return tx.list_backup_runs(target, limit)

    def run_record(self, run_id: str) -> BackupRun:
        with self.engine.store.read() as tx:
            run = tx.get_backup_run(run_id)
        if run is None:
            raise ValueError(f"no backup run {run_id!r}")
        return run

    def status(self, target: str | None = None) -> dict[str, TargetStatus]:
        names = [target] if target is not None else sorted(self.engine.config.backups)
        now = self.engine.clock()
        out = {}
        for name in names:
            t = self.target(name)
            out[name] = policy.restorability(t, self.runs(name), now)
        return out

    # ------------------------------------------------------------------------------ run

    def run(
        self, target: str, trigger: Trigger = Trigger.MANUAL, reason: str = "", *, by_engine: bool = False
    ) -> BackupRun:
        """Take one backup; the returned record is `ok` or `failed` (with the reason). `by_engine`:
        a scheduled run, taken by the engine on the configuration's authority (no role asked)."""
        t = self.target(target)
        actor = ENGINE_ACTOR if by_engine else self.engine.actor
        if not by_engine:
            self.engine.authz.require(actor, "backup.run")
        now = self.engine.clock()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        run = BackupRun(
            id=f"{t.name}-{stamp}-{secrets.token_hex(3)}",
            target=t.name,
            kind=t.kind,
            trigger=Trigger(trigger),
            actor=actor.user,
            started_at=now,
            reason=reason,
        )
        with self.engine.store.transaction() as tx:
            tx.insert_backup_run(run)
            tx.append_audit(
                now,
                actor,
                "backup.start",
                _audit_target(t.name),
                {"run": run.id, "trigger": str(trigger), "reason": reason},
            )
        try:
            done = self._take(t, run)
        except BackupError as exc:
            done = replace(run, status=RunStatus.FAILED, reason=exc.message, error_kind=exc.kind)
        except BaseException:
            self._finish(
                replace(run, status=RunStatus.FAILED, reason="interrupted", error_kind="interrupted"),
                run,
                actor,
            )
            raise
        return self._finish(done, run, actor)

    def _take(self, t: BackupTarget, run: BackupRun) -> BackupRun:
        """The local copy, written whole; then, with `storage.s3`, its upload. A failed upload fails
        the run and removes the local copy too: a failed record leaves no copy behind."""
        done = self._write_local(t, run)
        if t.s3 is None:
            return done
        local = Path(done.locations[0])
        try:
            location = self._s3(t).upload(local, done.sha256)
        except BaseException:
            local.unlink(missing_ok=True)
            raise
        return replace(done, locations=(*done.locations, location))

    def _s3(self, t: BackupTarget) -> s3.S3:
        if t.s3 is None:
            raise BackupError(
                "config", f"{t.name} has no storage.s3 any more: its S3 copies are out of reach"
            )
        store = self._buckets.get(t.s3)
        if store is None:
            store = self._buckets[t.s3] = s3.S3(t.s3)
        return store

    def _write_local(self, t: BackupTarget, run: BackupRun) -> BackupRun:
        directory = self.storage(t)
        if t.kind == "files":
            dest = directory / f"{run.id}.tar.gz"
            written = archive.write(dest, self._sources(t), self._state_db() if t.state else None)
            return replace(
                run,
                status=RunStatus.OK,
                size=written.size,
                sha256=written.sha256,
                locations=(str(dest),),
                members=written.members,
            )
        from . import postgres

        dest = directory / f"{run.id}.dump"
        directory.mkdir(parents=True, exist_ok=True)
        dump = postgres.dump(
            t.dsn, dest, password_env=t.password_env, environ=self.engine.environ, timeout=t.timeout
        )
        return replace(
            run,
            status=RunStatus.OK,
            size=dump.size,
            sha256=dump.sha256,
            locations=(str(dump.path),),
            row_counts=dict(dump.row_counts),
        )

    def _finish(self, done: BackupRun, started: BackupRun, actor: Actor) -> BackupRun:
        now = self.engine.clock()
        done = replace(done, ended_at=now)
        sent: list[int] = []
        with self.engine.store.transaction() as tx:
            if not tx.update_backup_run(done, started.version):
                raise BackupError("failed", f"backup run {done.id} was changed by someone else")
            tx.append_audit(now, actor, "backup.run", _audit_target(done.target), _audit_doc(done))
            if done.status is RunStatus.FAILED:
                sent = self._notify_failed(
                    tx, done, f"backup {done.id} of {done.target} failed: {done.reason}", now
                )
        notifier.deliver_soon(self.engine.store, sent)
        self.engine.bus.publish("backups", target=done.target)
        return replace(done, version=started.version + 1)

    def _notify_failed(self, tx: Any, run: BackupRun, message: str, now: float) -> list[int]:
        """`backup_failed` into the outbox, in the transaction that records the failure. Not for a
        backup taken before a phase: the rollout it holds sends one message naming the rollout, the
        phase and this reason, so the receiver is not told the same failure twice."""
        if run.trigger is Trigger.BEFORE_PHASE:
            return []
        return notifier.enqueue(
            tx, self.engine.config.notifications, "backup_failed", message, now, target=run.target, run=run.id
        )

    def _sources(self, t: BackupTarget) -> list[archive.Source]:
        paths: list[Path] = [Path(p) for p in t.paths]
        cfg = self.engine.config
        if t.configuration:
            paths.append(Path(cfg.path))
            paths.extend(Path(p.where.rsplit(":", 1)[0]) for p in cfg.plans.values() if p.where)
        if t.flags:
            for env in cfg.environments.values():
                if env.flags is not None:
                    paths.extend(Path(p) for p in (env.flags.path, env.flags.flagd, env.flags.dotenv) if p)
        seen: set[str] = set()
        out = []
        for p in paths:
            name = archive.arcname_for(p)
            if name in seen or (p not in [Path(x) for x in t.paths] and not p.exists()):
                continue  # a flag file not exported yet is not an error; a named path is
            seen.add(name)
            out.append(archive.Source(p, name))
        return out

    def _state_db(self) -> Path:
        path = getattr(self.engine.store, "path", None)
        if not isinstance(path, str) or path == ":memory:":
            raise BackupError("config", "state: true needs the SQLite store (a file)")
        return Path(path)

    # ------------------------------------------------------------------------------ verify

    def verify(self, target: str, run_id: str | None = None, *, by_engine: bool = False) -> BackupRun:
        """Check one run's stored copy (the newest with one by default): the recorded sha256, then a
        full read with member checksums (files) or a scratch restore with row counts (postgres).
        The returned record is `verified` or `verify_failed` with the reason."""
        t = self.target(target)
        actor = ENGINE_ACTOR if by_engine else self.engine.actor
        if not by_engine:
            self.engine.authz.require(actor, "backup.verify")
        run = self._pick(t, run_id)
        started = self.engine.clock()
        try:
            how, result = self._check(t, run)
            now = self.engine.clock()
            done = replace(
                run,
                status=RunStatus.VERIFIED,
                verified_at=now,
                verified_how=how,
                verify_result=result,
                restore_tested_at=now,
                error_kind="",
            )
        except BackupError as exc:
            now = self.engine.clock()
            done = replace(
                run,
                status=RunStatus.VERIFY_FAILED,
                verified_at=now,
                verified_how="checksum" if exc.kind in ("checksum", "storage") else "read",
                verify_result=exc.message,
                reason=exc.message,
                error_kind=exc.kind,
            )
        with self.engine.store.transaction() as tx:
            if not tx.update_backup_run(done, run.version):
                raise BackupError("failed", f"backup run {run.id} was changed by someone else; verify again")
            tx.append_audit(
                now,
                actor,
                "backup.verify",
                _audit_target(t.name),
                {
                    "run": run.id,
                    "status": str(done.status),
                    "how": done.verified_how,
                    "result": done.verify_result,
                    "seconds": round(now - started, 3),
                },
            )
            sent: list[int] = []
            if done.status is RunStatus.VERIFY_FAILED:
                why = f"backup {run.id} of {t.name} failed verification: {done.verify_result}"
                sent = self._notify_failed(tx, done, why, now)
        notifier.deliver_soon(self.engine.store, sent)
        self.engine.bus.publish("backups", target=t.name)
        return replace(done, version=run.version + 1)

    def _check(self, t: BackupTarget, run: BackupRun) -> tuple[str, str]:
        """Every stored copy: the local one read in full (files) or restored into a scratch database
        (postgres); each S3 copy read back and hashed — in full like the local one when no local copy
        passed. Any copy that fails fails the verification, every failing location named."""
        if not run.locations:
            raise BackupError("storage", f"backup run {run.id} lists no stored copy")
        problems: list[BackupError] = []
        results: list[str] = []
        deep = False
        for loc in run.locations:
            try:
                if not s3.is_s3(loc):
                    results.append(self._deep_check(t, run, Path(loc), loc))
                    deep = True
                elif not deep:
                    tmp = self._s3(t).download(loc, self.storage(t), run.sha256)
                    try:
                        results.append(self._deep_check(t, run, tmp, loc))
                    finally:
                        tmp.unlink(missing_ok=True)
                    deep = True
                else:
                    digest, _ = self._s3(t).sha256(loc)
                    if digest != run.sha256:
                        raise BackupError(
                            "checksum",
                            f"{loc}: sha256 {digest[:12]}… does not match the record's {run.sha256[:12]}…",
                        )
                    results.append(f"{loc}: sha256 matches")
            except BackupError as exc:
                problems.append(exc)
        if problems:
            raise BackupError(problems[0].kind, "; ".join(p.message for p in problems))
        how = "full read, member checksums" if t.kind == "files" else "scratch restore, row counts"
        if any(s3.is_s3(loc) for loc in run.locations):
            how += ", S3 sha256"
        return how, "; ".join(results)

    def _deep_check(self, t: BackupTarget, run: BackupRun, path: Path, location: str) -> str:
        """One copy read in full (`path`, the copy at `location` or a download of it); a failure's
        message names `location`."""
        try:
            return self._deep_check_path(t, run, path)
        except BackupError as exc:
            if location in exc.message:
                raise
            raise BackupError(exc.kind, f"{location}: {exc.message}") from exc

    def _deep_check_path(self, t: BackupTarget, run: BackupRun, path: Path) -> str:
        if t.kind == "files":
            return archive.check(path, run.sha256, run.members)
        if not path.is_file():
            raise BackupError("storage", f"{path} is missing")
        digest, _ = archive.file_sha256(path)
        if digest != run.sha256:
            raise BackupError("checksum", f"{path.name}: sha256 does not match the record")
        from . import postgres

        check = postgres.verify(
            t.dsn,
            path,
            run.row_counts,
            password_env=t.password_env,
            environ=self.engine.environ,
            timeout=t.timeout,
        )
        if not check.ok:
            raise BackupError("corrupt", check.reason)
        return check.reason

    def _pick(self, t: BackupTarget, run_id: str | None, usable: frozenset[RunStatus] = STORED) -> BackupRun:
        if run_id is not None:
            run = self.run_record(run_id)
            if run.target != t.name:
                raise ValueError(f"backup run {run_id} belongs to {run.target}, not {t.name}")
            if run.status not in usable:
                raise Rejected(f"backup run {run_id} is {run.status}: it has no usable stored copy")
            return run
        for run in self.runs(t.name):
            if run.status in usable:
                return run
        raise Rejected(f"{t.name} has no backup with a stored copy")

    # ------------------------------------------------------------------------------ retention

    def prune(self, target: str, dry_run: bool = False) -> list[RetentionDecision]:
        """What retention keeps and deletes, with why; without `dry_run` the copies go (their
        records stay, marked pruned)."""
        t = self.target(target)
        if not dry_run:
            self.engine.authz.require(self.engine.actor, "backup.prune")
        decisions = policy.retention(self.runs(t.name), t.keep_last, t.keep_daily, t.keep_weekly)
        if dry_run:
            return decisions
        now = self.engine.clock()
        pruned: list[str] = []
        left: list[str] = []
        out = []
        for d in decisions:
            if d.keep:
                out.append(d)
                continue
            with self.engine.store.transaction() as tx:
                current = tx.get_backup_run(d.run.id)
                if current is None or current.version != d.run.version or current.in_use_by:
                    out.append(RetentionDecision(d.run, True, "changed since retention was decided; kept"))
                    continue
                done = replace(current, status=RunStatus.PRUNED, reason=d.why)
                tx.update_backup_run(done, current.version)
            stayed = []
            for loc in d.run.locations:
                if not s3.is_s3(loc):
                    Path(loc).unlink(missing_ok=True)
                    continue
                try:
                    self._s3(t).delete(loc)
                except BackupError as exc:  # the record says pruned either way: say what stayed
                    stayed.append(f"{exc.message} (the copy stays; delete it by hand)")
            left.extend(stayed)
            pruned.append(d.run.id)
            out.append(replace(d, why="; ".join([d.why, *stayed])) if stayed else d)
        with self.engine.store.transaction() as tx:
            tx.append_audit(
                now,
                self.engine.actor,
                "backup.prune",
                _audit_target(t.name),
                {"pruned": pruned, "kept": [d.run.id for d in out if d.keep]}
                | ({"not_deleted": left} if left else {}),
            )
        self.engine.bus.publish("backups", target=t.name)
        return out

    # ------------------------------------------------------------------------------ restore

    def restore(
        self,
        target: str,
        run_id: str | None = None,
        *,
        into: str | None = None,
        overwrite: bool = False,
        confirm: str = "",
        reason: str = "",
    ) -> RestoreResult:
        """Restore into a new directory (files) or database (postgres) by default; `overwrite`
        restores over the originals and needs an approver, `confirm` equal to the target's name,
        and takes a safety backup first."""
        t = self.target(target)
        actor = self.engine.actor
        if overwrite:
            if into is not None:
                raise ValueError("restore over the originals or into a new place, not both")
            why = self.engine.authz.why_not(actor, "backup.restore_overwrite")
            if why is not None:
                raise Forbidden(why)
            if confirm != t.name:
                raise Rejected(
                    f"restoring over the originals of {t.name} needs its name typed back to confirm"
                )
        else:
            self.engine.authz.require(actor, "backup.restore")
        run = self._pick(t, run_id, GOOD)
        now = self.engine.clock()
        self._mark_in_use(run, f"{actor.user}@{now:.0f}")
        safety: BackupRun | None = None
        try:
            if overwrite:
                safety = self.run(t.name, Trigger.BEFORE_RESTORE, f"safety backup before restoring {run.id}")
                if safety.status != RunStatus.OK:
                    raise Rejected(f"the safety backup failed, nothing was restored: {safety.reason}")
            result = self._restore(t, run, into, overwrite)
        except BaseException as exc:
            self._audit_restore(t, run, None, overwrite, safety, reason, error=str(exc))
            raise
        finally:
            self._mark_in_use(self.run_record(run.id), "")
        self._audit_restore(t, run, result, overwrite, safety, reason)
        return replace(result, safety_backup=None if safety is None else safety.id)

    def _restore(self, t: BackupTarget, run: BackupRun, into: str | None, overwrite: bool) -> RestoreResult:
        path, downloaded = self._source(t, run)
        try:
            return self._restore_from(t, run, path, into, overwrite)
        finally:
            if downloaded:
                path.unlink(missing_ok=True)

    def _source(self, t: BackupTarget, run: BackupRun) -> tuple[Path, bool]:
        """The first stored copy that matches the record (the local one, else one fetched from S3),
        and whether it is a downloaded temporary."""
        problems = []
        for loc in run.locations:
            if s3.is_s3(loc):
                try:
                    return self._s3(t).download(loc, self.storage(t), run.sha256), True
                except BackupError as exc:
                    problems.append(exc.message)
                continue
            path = Path(loc)
            digest, _ = archive.file_sha256(path) if path.is_file() else ("", 0)
            if digest == run.sha256:
                return path, False
            problems.append(f"{path} does not match its record (missing or changed)")
        raise BackupError("checksum", "; ".join(problems or ["no stored copy"]) + "; not restored")

    def _restore_from(
        self, t: BackupTarget, run: BackupRun, path: Path, into: str | None, overwrite: bool
    ) -> RestoreResult:
        if t.kind == "postgres":
            from . import postgres

            name = _database(t.dsn) if overwrite else into
            db = postgres.restore(
                t.dsn,
                path,
                into=name,
                password_env=t.password_env,
                environ=self.engine.environ,
                timeout=t.timeout,
            )
            return RestoreResult(t.name, run.id, db, overwrite)
        if overwrite:
            archive.extract(path, Path("/"), only_prefix="files")
            notes = (
                ("the state database is restored into a directory only: this engine holds it open",)
                if any(m.name.startswith("state/") for m in run.members)
                else ()
            )
            return RestoreResult(t.name, run.id, "/", True, notes=notes)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.engine.clock()))
        dest = Path(into) if into else self.storage(t).parent / "restored" / f"{run.id}-{stamp}"
        if dest.exists() and any(dest.iterdir()):
            raise BackupError("exists", f"{dest} exists and is not empty; restore into a new directory")
        dest.mkdir(parents=True, exist_ok=True)
        archive.extract(path, dest)
        return RestoreResult(t.name, run.id, str(dest), False)

    def _mark_in_use(self, run: BackupRun, by: str) -> None:
        with self.engine.store.transaction() as tx:
            current = tx.get_backup_run(run.id)
            if current is None:
                return
            if by and current.status not in GOOD:
                raise Rejected(f"backup run {run.id} is {current.status} now; not restored")
            tx.update_backup_run(replace(current, in_use_by=by), current.version)

    def _audit_restore(
        self,
        t: BackupTarget,
        run: BackupRun,
        result: RestoreResult | None,
        overwrite: bool,
        safety: BackupRun | None,
        reason: str,
        error: str = "",
    ) -> None:
        data: dict[str, Any] = {
            "run": run.id,
            "overwrite": overwrite,
            "into": None if result is None else result.into,
            "safety_backup": None if safety is None else safety.id,
            "reason": reason,
        }
        if error:
            data["error"] = error[:300]
        with self.engine.store.transaction() as tx:
            tx.append_audit(
                self.engine.clock(), self.engine.actor, "backup.restore", _audit_target(t.name), data
            )
        self.engine.bus.publish("backups", target=t.name)

    # ------------------------------------------------------------------------------ upkeep

    def fail_interrupted(self, now: float | None = None) -> list[str]:
        """Mark runs left `running` by a process that died as failed (interrupted)."""
        now = self.engine.clock() if now is None else now
        done = []
        with self.engine.store.transaction() as tx:
            for run in tx.list_backup_runs():
                if run.status == RunStatus.RUNNING and now - run.started_at > INTERRUPTED_AFTER:
                    failed = replace(
                        run,
                        status=RunStatus.FAILED,
                        ended_at=now,
                        reason="interrupted (the process ended)",
                        error_kind="interrupted",
                    )
                    if tx.update_backup_run(failed, run.version):
                        tx.append_audit(
                            now,
                            ENGINE_ACTOR,
                            "backup.interrupted",
                            _audit_target(run.target),
                            {"run": run.id},
                        )
                        done.append(run.id)
        return done


def _audit_target(name: str) -> str:
    return f"backup:{name}"


def _audit_doc(run: BackupRun) -> dict[str, Any]:
    doc = run.doc()
    doc.pop("row_counts", None)
    return doc


def _database(dsn: str) -> str:
    return urlsplit(dsn).path.strip("/")


def newest_verified(runs: Sequence[BackupRun]) -> BackupRun | None:
    return next((r for r in runs if r.status == RunStatus.VERIFIED), None)
