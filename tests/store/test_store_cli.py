"""`opsconsole store migrate` and `opsconsole store copy` as a user runs them (real processes): a
SQLite workspace's history copied to PostgreSQL verifies there (`audit --verify`, against the same
workspace's anchor too), and every refusal says what is wrong without showing a password."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor, ScheduleStep
from opsconsole.engine.runner import Runner
from opsconsole.engine.store.schema import LATEST_VERSION, MIGRATIONS
from tests.pg.server import PASSWORD, PgServer
from tests.store.conftest import fresh_pg_database, raw_rows
from tests.store.test_concurrent_approvals import write_config

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, password: str | None = PASSWORD, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO), "PYTHONPATH": str(REPO)}
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


def sqlite_history(tmp_path: Path) -> tuple[Path, Path, str]:
    """A SQLite workspace with a bit of everything: a rollout approved into its next phase, flags and
    their history, a schedule, verdicts, audit events, an outbox row. Returns (config, workspace, url)."""
    url = f"sqlite:///{tmp_path}/sqlite/state.db"
    config = write_config(tmp_path, url, need=1)
    ws = tmp_path / "ws"
    cfg = load_config(config, {"WORKSPACE": str(ws)})
    starter = Engine(cfg, ws, Actor("starter", "test"))
    r = starter.start_rollout("gated", "copy me")
    runner = Runner(starter)

    async def drive() -> None:
        try:
            for _ in range(3):
                await runner.tick()
        finally:
            await runner.observer.close()

    asyncio.run(drive())
    Engine(cfg, ws, Actor("approver00", "test")).approve(r.id, "fine")
    with starter.store.transaction() as tx:
        tx.insert_schedule("staging", "new_checkout", (ScheduleStep(9e9, 50),), starter.actor, "later", 1.0)
        tx.enqueue_notification("completed", "http://127.0.0.1:9/", "{}", 2.0, 1.0)
    starter.close()
    return config, ws, url


def test_copy_sqlite_to_postgresql_verifies_and_refuses_a_second_copy(
    tmp_path: Path, pg_url: str, pg_server: PgServer
) -> None:
    config, ws, sqlite_url = sqlite_history(tmp_path)
    before = raw_rows(sqlite_url, "SELECT seq, hash FROM audit ORDER BY seq")
    assert len(before) >= 4

    res = cli("store", "copy", "--from", sqlite_url, "--to", pg_url, "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["audit_events"] == len(before) and report["audit_head"] == before[-1][1]
    assert report["rows"]["rollouts"] == 1 and report["rows"]["flag_schedules"] == 1
    assert report["rows"]["outbox"] == 1 and report["rows"]["flag_history"] >= 2
    assert raw_rows(pg_url, "SELECT seq, hash FROM audit ORDER BY seq") == before

    # The same workspace on the copy: the chain verifies, and so does the workspace's anchor.
    pg_config = config.with_name("pg.yaml")
    pg_config.write_text(config.read_text().replace(sqlite_url, pg_url))
    res = cli("--config", str(pg_config), "--workspace", str(ws), "audit", "--verify")
    assert res.returncode == 0, res.stderr
    assert f"{len(before)} events verified" in res.stdout and "anchored at event" in res.stdout
    res = cli("--config", str(pg_config), "--workspace", str(ws), "status", "--all", "--json")
    assert res.returncode == 0, res.stderr
    assert "gated" in res.stdout
    # This session's login is the server's superuser: it acts as that login, and is told so.
    status = json.loads(res.stdout)
    assert status["user"] == pg_server.user and status["role"] == "viewer"
    assert "is a PostgreSQL superuser" in status["warnings"][0] and "is a PostgreSQL superuser" in res.stderr

    res = cli("store", "copy", "--from", sqlite_url, "--to", pg_url)
    assert res.returncode == 5
    assert "is not empty (table rollouts has rows); copy into a new database" in res.stderr
    assert raw_rows(pg_url, "SELECT COUNT(*) FROM audit") == [(len(before),)]


def test_copy_back_to_a_new_sqlite_file_verifies_too(tmp_path: Path, pg_url: str) -> None:
    _, _, sqlite_url = sqlite_history(tmp_path)
    assert cli("store", "copy", "--from", sqlite_url, "--to", pg_url).returncode == 0
    back = f"sqlite:///{tmp_path}/back/state.db"
    res = cli("store", "copy", "--from", pg_url, "--to", back)
    assert res.returncode == 0, res.stderr
    assert "audit chain verified on the copy" in res.stdout
    assert raw_rows(back, "SELECT seq, hash FROM audit ORDER BY seq") == raw_rows(
        sqlite_url, "SELECT seq, hash FROM audit ORDER BY seq"
    )


def test_migrate_a_new_database_then_nothing_to_do(pg_server: PgServer) -> None:
    url = pg_server.dsn(fresh_pg_database(pg_server, "migrate"))
    res = cli("store", "migrate", "--url", url)
    assert res.returncode == 0, res.stderr
    versions = ", ".join(str(v) for v, _ in MIGRATIONS)
    assert res.stdout.strip() == f"{url}: applied migrations {versions}; schema at version {LATEST_VERSION}"
    res = cli("store", "migrate", "--url", url, "--json")
    assert json.loads(res.stdout) == {"store": url, "version": LATEST_VERSION, "applied": []}


def test_refusals_are_clear_and_never_show_a_password(tmp_path: Path, pg_url: str) -> None:
    _, _, existing = sqlite_history(tmp_path)
    sqlite_url = f"sqlite:///{tmp_path}/s.db"
    with_password = pg_url.replace("postgres@", f"postgres:{PASSWORD}@")
    res = cli("store", "copy", "--from", existing, "--to", with_password)
    assert res.returncode == 5 and "carries a password" in res.stderr
    assert PASSWORD not in res.stderr + res.stdout

    res = cli("store", "copy", "--from", existing, "--to", pg_url, password="Wrong-Pw-0199")
    assert res.returncode == 5 and "cannot reach the PostgreSQL store" in res.stderr
    assert "Wrong-Pw-0199" not in res.stderr

    res = cli("store", "copy", "--from", existing, "--to", pg_url, "--to-password-env", "NOPE_PW")
    assert res.returncode == 5 and "the password variable NOPE_PW is not set" in res.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    res = cli("store", "migrate", "--url", f"postgresql://ops@127.0.0.1:{port}/ops")
    # The CLI masks any URL's userinfo in error messages (redact_text), the user name with it.
    assert res.returncode == 5 and "cannot reach the PostgreSQL store postgresql://" in res.stderr
    assert f"127.0.0.1:{port}/ops" in res.stderr and "Connection refused" in res.stderr
    assert time.monotonic() - started < 15

    res = cli("store", "copy", "--from", sqlite_url, "--to", sqlite_url)
    assert res.returncode == 5 and "--from and --to are the same store" in res.stderr
    res = cli("--read-only", "store", "migrate", "--url", sqlite_url)
    assert res.returncode == 4 and "--read-only" in res.stderr
    assert not os.path.exists(tmp_path / "s.db")  # no command above created it
    res = cli("store", "copy", "--from", sqlite_url, "--to", pg_url)
    assert res.returncode == 5 and f"there is no SQLite store at {tmp_path}/s.db (--from)" in res.stderr


@pytest.mark.parametrize("url", ["mysql://ops@db/ops", "sqlite://relative.db"])
def test_unknown_store_urls_are_input_errors_naming_the_url(url: str) -> None:
    res = cli("store", "migrate", "--url", url)
    assert res.returncode == 5 and "store URL" in res.stderr


def test_migrate_the_configured_store_with_its_password_variable(tmp_path: Path, pg_server: PgServer) -> None:
    url = pg_server.dsn(fresh_pg_database(pg_server, "configured"))
    config = write_config(tmp_path, url, need=1)
    config.write_text(config.read_text() + "store_password_env: OPS_STORE_PW\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO), "PYTHONPATH": str(REPO), "OPS_STORE_PW": PASSWORD}
    res = subprocess.run(
        [sys.executable, "-m", "opsconsole", "--config", str(config), "store", "migrate", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["applied"] == [v for v, _ in MIGRATIONS]
    res = cli("--config", str(config), "store", "migrate", password=None)  # the variable unset
    assert res.returncode == 5 and "the password variable OPS_STORE_PW is not set" in res.stderr
