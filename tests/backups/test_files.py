"""Files backups end to end against real files: run, verify, corrupt, restore, refusals."""

from __future__ import annotations

import gzip
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from opsconsole.engine import Engine, Forbidden, Rejected


def test_run_writes_a_whole_archive_with_a_manifest(engine: Engine, site: Path) -> None:
    run = engine.run_backup("site")
    assert run.status == "ok", run.reason
    path = Path(run.locations[0])
    assert path.name.endswith(".tar.gz") and path.stat().st_size == run.size
    names = {m.name for m in run.members}
    assert any(n.endswith("data/a.txt") for n in names)
    assert "state/state.db" in names
    assert any(n.endswith("opsconsole.yaml") for n in names)  # the configuration by default
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporaries left
    stored = engine.backups("site")
    assert [r.id for r in stored] == [run.id] and stored[0].status == "ok"
    assert engine.backup_status()["site"].state == "unverified"
    actions = [e.action for e in engine.audit_events("backup:site")]
    assert actions == ["backup.start", "backup.run"]


def test_state_database_copy_is_a_usable_sqlite_file(engine: Engine, tmp_path: Path) -> None:
    run = engine.run_backup("site")
    with tarfile.open(run.locations[0]) as tar:
        tar.extract("state/state.db", tmp_path / "x", filter="data")
    import sqlite3

    conn = sqlite3.connect(tmp_path / "x" / "state" / "state.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM backup_runs").fetchone()[0] >= 1
    conn.close()


def test_verify_reads_everything_and_makes_the_target_ok(engine: Engine) -> None:
    run = engine.run_backup("site")
    checked = engine.verify_backup("site")
    assert checked.id == run.id and checked.status == "verified"
    assert "every checksum matches" in checked.verify_result
    status = engine.backup_status("site")["site"]
    assert status.state == "ok" and run.id in status.why


def test_a_changed_member_fails_verification_naming_it(engine: Engine, tmp_path: Path) -> None:
    run = engine.run_backup("small")
    path = Path(run.locations[0])
    # Rebuild the archive with one member changed, then make the record's archive checksum match,
    # so only the member manifest can tell.
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "ex", filter="data")
    victim = next(p for p in (tmp_path / "ex").rglob("a.txt"))
    victim.write_text("tampered\n")
    path.unlink()
    with tarfile.open(path, "w:gz") as tar:
        for m in run.members:
            tar.add(tmp_path / "ex" / m.name, m.name)
    from opsconsole.engine.backups.archive import file_sha256

    digest, size = file_sha256(path)
    from dataclasses import replace

    with engine.store.transaction() as tx:
        current = tx.get_backup_run(run.id)
        assert current is not None
        assert tx.update_backup_run(replace(current, sha256=digest, size=size), current.version)
    checked = engine.verify_backup("small")
    assert checked.status == "verify_failed" and checked.error_kind == "checksum"
    assert "a.txt" in checked.verify_result
    assert engine.backup_status("small")["small"].state == "failing"


def test_a_corrupted_archive_fails_verification_with_the_reason(engine: Engine) -> None:
    run = engine.run_backup("small")
    path = Path(run.locations[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    checked = engine.verify_backup("small", run.id)
    assert checked.status == "verify_failed" and checked.error_kind == "checksum"
    assert "does not match the record" in checked.reason
    status = engine.backup_status("small")["small"]
    assert status.state == "failing" and "failed" in status.why


def test_a_truncated_archive_with_a_matching_record_is_corrupt(engine: Engine) -> None:
    run = engine.run_backup("small")
    path = Path(run.locations[0])
    path.write_bytes(path.read_bytes()[: run.size // 2])
    from dataclasses import replace

    from opsconsole.engine.backups.archive import file_sha256

    digest, size = file_sha256(path)
    with engine.store.transaction() as tx:
        cur = tx.get_backup_run(run.id)
        assert cur is not None and tx.update_backup_run(replace(cur, sha256=digest, size=size), cur.version)
    checked = engine.verify_backup("small")
    assert checked.status == "verify_failed" and checked.error_kind == "corrupt"


def test_a_missing_path_leaves_a_failed_record_and_no_archive(
    make_engine: Callable[..., Engine], site: Path, tmp_path: Path
) -> None:
    engine = make_engine()
    import shutil

    shutil.rmtree(site)
    run = engine.run_backup("small")
    assert run.status == "failed" and "no such file" in run.reason
    store = tmp_path / "small-store"
    assert not list(store.iterdir()) if store.exists() else True
    assert engine.backups("small")[0].status == "failed"


def test_interrupted_run_leaves_failed_record_and_no_file(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from opsconsole.engine.backups import archive

    real = archive._add

    def interrupt(*args: object, **kw: object) -> None:
        real(*args, **kw)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(archive, "_add", interrupt)
    with pytest.raises(KeyboardInterrupt):
        engine.run_backup("small")
    run = engine.backups("small")[0]
    assert run.status == "failed" and run.error_kind == "interrupted"
    assert list((tmp_path / "small-store").iterdir()) == []


def test_disk_full_leaves_failed_record_and_no_file(
    make_engine: Callable[..., Engine], site: Path, tmp_path: Path
) -> None:
    small = tmp_path / "tiny"
    small.mkdir()
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True, text=True
    )
    if p.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {p.stderr.strip()}")
    try:
        (site / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # random: gzip cannot shrink it
        engine = make_engine(small=small)
        run = engine.run_backup("small")
        assert run.status == "failed" and run.error_kind == "disk_full", run.reason
        assert list(small.iterdir()) == []
        assert engine.backup_status("small")["small"].state == "failing"
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_restore_into_a_new_directory(engine: Engine, site: Path, tmp_path: Path) -> None:
    run = engine.run_backup("site")
    (site / "a.txt").write_text("changed\n")
    result = engine.restore_backup("site", run.id, into=str(tmp_path / "out"))
    assert result.into == str(tmp_path / "out") and not result.overwrite
    restored = tmp_path / "out" / "files" / str(site / "a.txt").lstrip("/")
    assert restored.read_text() == "alpha\n"
    assert (site / "a.txt").read_text() == "changed\n"  # originals untouched
    assert engine.backup(run.id).in_use_by == ""
    assert "backup.restore" in [e.action for e in engine.audit_events("backup:site")]


def test_restore_over_originals_needs_approver_and_name(
    make_engine: Callable[..., Engine], site: Path
) -> None:
    oscar = make_engine("oscar")
    run = oscar.run_backup("small")
    (site / "a.txt").write_text("changed\n")
    with pytest.raises(Forbidden):
        oscar.restore_backup("small", run.id, overwrite=True, confirm="small")
    alice = make_engine("alice")
    with pytest.raises(Rejected):
        alice.restore_backup("small", run.id, overwrite=True, confirm="smal")
    with pytest.raises(Forbidden):
        make_engine("vic").restore_backup("small", run.id)
    assert (site / "a.txt").read_text() == "changed\n"
    result = alice.restore_backup("small", run.id, overwrite=True, confirm="small", reason="test")
    assert (site / "a.txt").read_text() == "alpha\n"
    assert result.safety_backup is not None
    safety = alice.backup(result.safety_backup)
    assert safety.trigger == "before_restore" and safety.status == "ok"
    # the safety backup holds the state before the restore
    with tarfile.open(safety.locations[0]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("data/a.txt"))
        f = tar.extractfile(member)
        assert f is not None and f.read() == b"changed\n"


def test_prune_keeps_newest_verified_and_marks_records(engine: Engine) -> None:
    ids = []
    for _ in range(4):
        ids.append(engine.run_backup("site").id)
    engine.verify_backup("site", ids[0])  # the oldest is the only verified one
    plan = engine.prune_backups("site", dry_run=True)
    assert all(Path(d.run.locations[0]).exists() for d in plan)  # a dry run deletes nothing
    keep = {d.run.id: d.why for d in plan if d.keep}
    assert ids[0] in keep and "newest verified" in keep[ids[0]]
    assert ids[3] in keep and ids[2] in keep and ids[1] not in keep
    done = engine.prune_backups("site")
    gone = [d.run for d in done if not d.keep]
    assert [r.id for r in gone] == [ids[1]]
    assert not Path(gone[0].locations[0]).exists()
    assert engine.backup(ids[1]).status == "pruned"
    assert len(engine.backups("site")) == 4  # records kept


def test_gzip_is_valid(engine: Engine) -> None:
    run = engine.run_backup("small")
    with gzip.open(run.locations[0]) as f:
        assert f.read(1)
