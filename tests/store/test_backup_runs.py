"""backup_runs in every store kind: insert, compare-and-set update, newest-first listing, the body round trip."""

from __future__ import annotations

from dataclasses import replace

import pytest

from opsconsole.engine.backups.model import BackupRun, Member, RunStatus, Trigger
from opsconsole.engine.store import Store, StoreError


def test_round_trip_and_compare_and_set(store: Store) -> None:
    a = BackupRun("a", "t", "files", Trigger.SCHEDULE, "eve", 10.0, members=(Member("files/x", 3, "ab"),))
    b = BackupRun("b", "t", "postgres", Trigger.BEFORE_PHASE, "eve", 20.0, row_counts={"public.t": 5})
    c = BackupRun("c", "u", "files", Trigger.MANUAL, "eve", 30.0)
    with store.transaction() as tx:
        for r in (a, b, c):
            tx.insert_backup_run(r)
        with pytest.raises(StoreError):
            tx.insert_backup_run(a)
    with store.read() as tx:
        assert [r.id for r in tx.list_backup_runs("t")] == ["b", "a"]
        assert [r.id for r in tx.list_backup_runs(limit=2)] == ["c", "b"]
        assert tx.get_backup_run("a") == a
        assert tx.get_backup_run("b") == b
    done = replace(a, status=RunStatus.VERIFIED, ended_at=11.0, sha256="ff", locations=("/x",))
    with store.transaction() as tx:
        assert tx.update_backup_run(done, 0)
        assert not tx.update_backup_run(done, 0)  # someone else got there first
    with store.read() as tx:
        assert tx.get_backup_run("a") == replace(done, version=1)
        with pytest.raises(StoreError):
            tx.insert_backup_run(c)
