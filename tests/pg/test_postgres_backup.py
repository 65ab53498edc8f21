"""PostgreSQL backups against a real server: dump, verification by a real scratch restore, restore,
and each way it can fail ending in a BackupError of the right kind with no password in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsconsole.engine.backups.errors import BackupError
from opsconsole.engine.backups.postgres import PgDump, dump, redact_dsn, restore, verify
from tests.pg.server import PASSWORD, PASSWORD_ENV, SAMPLE_COUNTS, PgServer

TIMEOUT = 60.0


def _dump(pg: PgServer, db: str, dest: Path) -> PgDump:
    return dump(pg.dsn(db), dest, password_env=PASSWORD_ENV, environ=pg.environ(), timeout=TIMEOUT)


def test_dump_verify_change_restore_finds_the_original_rows(
    pg_server: PgServer, sample_db: str, tmp_path: Path
) -> None:
    backup = _dump(pg_server, sample_db, tmp_path)

    assert backup.row_counts == SAMPLE_COUNTS
    assert backup.path.parent == tmp_path and backup.path.name.startswith(sample_db)
    assert backup.size == backup.path.stat().st_size > 0
    assert backup.path.read_bytes()[:5] == b"PGDMP"
    assert [p.name for p in tmp_path.iterdir()] == [backup.path.name]  # no temp file left

    before = pg_server.databases()
    check = verify(
        pg_server.dsn(sample_db),
        backup.path,
        backup.row_counts,
        password_env=PASSWORD_ENV,
        environ=pg_server.environ(),
        timeout=TIMEOUT,
    )
    assert check.ok, check.reason
    assert check.counts == SAMPLE_COUNTS
    assert check.reason == "4 tables, 1,953 rows as at backup"
    assert check.scratch.startswith(f"{sample_db}_verify_")
    assert pg_server.databases() == before  # the scratch database is gone

    with pg_server.connect(sample_db) as conn:
        conn.execute("DELETE FROM orders WHERE id > 10")
        conn.execute("UPDATE customers SET name = 'changed'")

    restored = restore(
        pg_server.dsn(sample_db),
        backup.path,
        into=None,
        password_env=PASSWORD_ENV,
        environ=pg_server.environ(),
        timeout=TIMEOUT,
    )
    assert restored.startswith(f"{sample_db}_restored_")
    with pg_server.connect(restored) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1500,)
        assert conn.execute("SELECT name FROM customers WHERE id = 7").fetchone() == ("customer 7",)
        assert conn.execute("SELECT count(*) FROM audit.events").fetchone() == (333,)
    with pg_server.connect(sample_db) as conn:  # the original is untouched
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (10,)


def test_restore_over_the_original_brings_its_rows_back(
    pg_server: PgServer, sample_db: str, tmp_path: Path
) -> None:
    backup = _dump(pg_server, sample_db, tmp_path / "shop.dump")
    assert backup.path == tmp_path / "shop.dump"
    with pg_server.connect(sample_db) as conn:
        conn.execute("DELETE FROM orders")
        conn.execute("CREATE TABLE added_later (id int)")

    name = restore(
        pg_server.dsn(sample_db),
        backup.path,
        into=sample_db,
        password_env=PASSWORD_ENV,
        environ=pg_server.environ(),
        timeout=TIMEOUT,
    )
    assert name == sample_db
    with pg_server.connect(sample_db) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1500,)


def test_restore_into_an_existing_other_database_is_refused(
    pg_server: PgServer, sample_db: str, tmp_path: Path
) -> None:
    backup = _dump(pg_server, sample_db, tmp_path)
    with pytest.raises(BackupError) as err:
        restore(
            pg_server.dsn(sample_db),
            backup.path,
            into="postgres",
            password_env=PASSWORD_ENV,
            environ=pg_server.environ(),
            timeout=TIMEOUT,
        )
    assert err.value.kind == "exists"
    assert "postgres" in err.value.message


def test_a_corrupted_archive_fails_verification_with_the_reason(
    pg_server: PgServer, sample_db: str, tmp_path: Path
) -> None:
    backup = _dump(pg_server, sample_db, tmp_path)
    data = bytearray(backup.path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    backup.path.write_bytes(bytes(data[: len(data) * 3 // 4]))
    before = pg_server.databases()

    check = verify(
        pg_server.dsn(sample_db),
        backup.path,
        backup.row_counts,
        password_env=PASSWORD_ENV,
        environ=pg_server.environ(),
        timeout=TIMEOUT,
    )
    assert not check.ok
    assert check.reason.startswith(("archive is corrupt", "restore failed", "row counts differ")), (
        check.reason
    )
    assert pg_server.databases() == before

    with pytest.raises(BackupError) as err:
        restore(
            pg_server.dsn(sample_db),
            backup.path,
            into=None,
            password_env=PASSWORD_ENV,
            environ=pg_server.environ(),
            timeout=TIMEOUT,
        )
    assert err.value.kind == "corrupt"
    assert pg_server.databases() == before  # the half-made new database is dropped


def test_garbage_is_not_an_archive(pg_server: PgServer, sample_db: str, tmp_path: Path) -> None:
    fake = tmp_path / "fake.dump"
    fake.write_bytes(b"not a dump at all\n" * 100)
    check = verify(
        pg_server.dsn(sample_db),
        fake,
        SAMPLE_COUNTS,
        password_env=PASSWORD_ENV,
        environ=pg_server.environ(),
        timeout=TIMEOUT,
    )
    assert not check.ok
    assert check.reason.startswith("archive is corrupt"), check.reason


def test_changed_rows_fail_verification_naming_the_table(
    pg_server: PgServer, sample_db: str, tmp_path: Path
) -> None:
    backup = _dump(pg_server, sample_db, tmp_path)
    expected = {**backup.row_counts, "public.orders": 1_499}
    check = verify(
        pg_server.dsn(sample_db),
        backup.path,
        expected,
        password_env=PASSWORD_ENV,
        environ=pg_server.environ(),
        timeout=TIMEOUT,
    )
    assert not check.ok
    assert check.reason == "row counts differ: public.orders has 1,500 rows, expected 1,499"


def test_a_wrong_password_is_auth_and_never_shown(
    pg_server: PgServer, sample_db: str, tmp_path: Path
) -> None:
    env = {**pg_server.environ(), PASSWORD_ENV: "wrong-Password-5512"}
    dsn = f"postgresql://postgres:{PASSWORD}x@127.0.0.1:{pg_server.port}/{sample_db}"
    for call_dsn, password_env in ((pg_server.dsn(sample_db), PASSWORD_ENV), (dsn, None)):
        with pytest.raises(BackupError) as err:
            dump(call_dsn, tmp_path, password_env=password_env, environ=env, timeout=TIMEOUT)
        assert err.value.kind == "auth"
        assert "wrong-Password" not in str(err.value) and PASSWORD not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_pgpass_supplies_the_password(pg_server: PgServer, sample_db: str, tmp_path: Path) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_server.port}:*:postgres:{PASSWORD}\n")
    passfile.chmod(0o600)
    env = {k: v for k, v in pg_server.environ().items() if k != PASSWORD_ENV}
    env["PGPASSFILE"] = str(passfile)
    out = tmp_path / "out"
    out.mkdir()
    backup = dump(pg_server.dsn(sample_db), out, password_env=None, environ=env, timeout=TIMEOUT)
    assert backup.row_counts == SAMPLE_COUNTS


def test_an_unreachable_server_is_unreachable(pg_server: PgServer, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BackupError) as err:
        dump(
            f"postgresql://postgres@127.0.0.1:{port}/shop",
            tmp_path,
            password_env=PASSWORD_ENV,
            environ=pg_server.environ(),
            timeout=TIMEOUT,
        )
    assert err.value.kind == "unreachable"
    assert PASSWORD not in str(err.value)


def test_redact_dsn_hides_the_password() -> None:
    assert redact_dsn("postgresql://app:hunter2@db:5432/shop") == "postgresql://app:***@db:5432/shop"
    assert (
        redact_dsn("postgresql://db/shop?user=a&password=hunter2")
        == "postgresql://db/shop?user=a&password=***"
    )
    assert redact_dsn("host=db password='hun ter2' dbname=shop") == "host=db password=*** dbname=shop"
    assert redact_dsn("host=db dbname=shop") == "host=db dbname=shop"
    assert redact_dsn("postgresql://app@db/shop") == "postgresql://app@db/shop"
    assert redact_dsn("postgresql://a:b@db?password=c") == "postgresql://a:***@db?password=***"
    assert (
        redact_dsn("postgresql://app:p%40ss@h1:5432,h2:5433/shop")
        == "postgresql://app:***@h1:5432,h2:5433/shop"
    )


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, check=False
    )
    return done.returncode == 0


def test_disk_full_during_a_dump_leaves_no_file(pg_server: PgServer, sample_db: str, tmp_path: Path) -> None:
    with pg_server.connect(sample_db) as conn:  # incompressible rows, far more than the disk holds
        conn.execute(
            "CREATE TABLE blobs AS SELECT g, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 200000) g"
        )
    small = tmp_path / "small"
    small.mkdir()
    if not _mount_tmpfs(small, "256k"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount permission)")
    try:
        with pytest.raises(BackupError) as err:
            _dump(pg_server, sample_db, small)
        assert err.value.kind == "disk_full", err.value
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_a_blocked_dump_ends_at_its_timeout_and_leaves_no_file(
    pg_server: PgServer, sample_db: str, tmp_path: Path
) -> None:
    with pg_server.connect(sample_db) as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # counts and pg_dump both wait
        with pytest.raises(BackupError) as err:
            dump(
                pg_server.dsn(sample_db),
                tmp_path,
                password_env=PASSWORD_ENV,
                environ=pg_server.environ(),
                timeout=2,
            )
        locker.execute("ROLLBACK")
    assert err.value.kind == "timeout", err.value
    assert list(tmp_path.iterdir()) == []


def test_the_password_reaches_the_tools_only_through_their_environment(
    pg_server: PgServer, sample_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []
    real_popen = subprocess.Popen

    def spy(argv: list[str], **kwargs: object) -> subprocess.Popen[str]:
        seen.append((list(argv), dict(kwargs["env"])))  # type: ignore[call-overload]
        return real_popen(argv, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "Popen", spy)
    backup = _dump(pg_server, sample_db, tmp_path)
    verify(
        pg_server.dsn(sample_db),
        backup.path,
        backup.row_counts,
        password_env=PASSWORD_ENV,
        environ=pg_server.environ(),
        timeout=TIMEOUT,
    )
    assert [Path(argv[0]).name for argv, _ in seen] == ["pg_dump", "pg_restore"]
    for argv, env in seen:
        assert not any(PASSWORD in arg for arg in argv)
        assert env["PGPASSWORD"] == PASSWORD


def test_a_failed_restore_over_the_original_leaves_it_as_it_was(
    pg_server: PgServer, sample_db: str, tmp_path: Path
) -> None:
    backup = _dump(pg_server, sample_db, tmp_path)
    data = backup.path.read_bytes()
    backup.path.write_bytes(data[: len(data) * 3 // 4])  # whole header, truncated data
    with pg_server.connect(sample_db) as conn:
        conn.execute("DELETE FROM orders WHERE id > 100")
    with pytest.raises(BackupError) as err:
        restore(
            pg_server.dsn(sample_db),
            backup.path,
            into=sample_db,
            password_env=PASSWORD_ENV,
            environ=pg_server.environ(),
            timeout=TIMEOUT,
        )
    assert err.value.kind == "corrupt", err.value
    with pg_server.connect(sample_db) as conn:  # one transaction: nothing dropped, nothing half-loaded
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (100,)
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (120,)


def test_a_database_that_does_not_exist_is_a_config_error(pg_server: PgServer, tmp_path: Path) -> None:
    with pytest.raises(BackupError) as err:
        dump(
            pg_server.dsn("no_such_db"),
            tmp_path,
            password_env=PASSWORD_ENV,
            environ=pg_server.environ(),
            timeout=TIMEOUT,
        )
    assert err.value.kind == "config"
    assert "no_such_db" in err.value.message


def test_the_engine_loads_psycopg_only_when_a_backup_runs() -> None:
    code = "import sys, opsconsole.engine.backups.postgres; print(any(m.startswith('psycopg') for m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == "False"
