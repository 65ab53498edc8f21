"""What only the PostgreSQL store has: its password from the environment and never shown, a bounded
wait for an unreachable server, writers queueing on the write lock (StoreBusy past the wait) while
readers never wait for them."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from opsconsole.engine.model import Actor
from opsconsole.engine.store import Store, StoreBusy, StoreError, open_store
from opsconsole.engine.store.postgres import CONNECT_TIMEOUT, POOL_MAX
from tests.pg.server import PASSWORD, PgServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_password_from_the_variable_the_configuration_names(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD")
    s = open_store(pg_url, password_env="OPS_STORE_PW", environ={"OPS_STORE_PW": PASSWORD})
    with s.transaction() as tx:
        tx.set_kv("k", 1, 0.0)
    s.close()
    with pytest.raises(StoreError, match="the password variable OPS_STORE_PW is not set"):
        open_store(pg_url, password_env="OPS_STORE_PW", environ={})


def test_a_wrong_password_is_a_store_error_that_never_shows_a_password(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Not-The-Pw-4411"
    monkeypatch.setenv("PGPASSWORD", wrong)
    with pytest.raises(StoreError, match="cannot reach the PostgreSQL store") as info:
        open_store(pg_url)
    assert wrong not in str(info.value) and PASSWORD not in str(info.value)
    with pytest.raises(StoreError, match="carries a password") as info:
        open_store(pg_url.replace("postgres@", f"postgres:{PASSWORD}@"))
    assert PASSWORD not in str(info.value) and "***" in str(info.value)


def test_an_unreachable_server_is_a_store_error_within_the_connect_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach the PostgreSQL store postgresql://ops@127.0.0.1"):
        open_store(f"postgresql://ops@127.0.0.1:{free_port()}/ops")
    assert time.monotonic() - started < CONNECT_TIMEOUT + 1


@pytest.fixture
def two(pg_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one fresh database, as two processes would have."""
    first, second = open_store(pg_url), open_store(pg_url)
    yield first, second
    first.close()
    second.close()


def test_readers_never_wait_for_a_writer_and_writers_queue_up_to_their_timeout(
    two: tuple[Store, Store],
) -> None:
    first, second = two
    with first.transaction() as tx:
        tx.set_kv("k", "before", 0.0)
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with first.transaction() as tx:
            tx.set_kv("k", "during", 1.0)
            holding.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with second.read() as tx:
            assert tx.get_kv("k") == "before"  # the committed state, at once
        assert time.monotonic() - started < 0.5
        started = time.monotonic()
        with pytest.raises(StoreBusy, match="write lock"), second.transaction(timeout=0.3) as tx:
            tx.set_kv("k", "second", 2.0)
        assert 0.25 < time.monotonic() - started < 2.0
    finally:
        release.set()
        t.join(10)
    with second.transaction(timeout=2) as tx:  # the lock is free again
        assert tx.get_kv("k") == "during"
        tx.set_kv("k", "second", 2.0)


def test_a_read_is_one_snapshot(opener: Callable[[], Store]) -> None:
    first, second = opener(), opener()  # both store kinds: the same answer
    with first.transaction() as tx:
        tx.set_kv("k", 1, 0.0)
    with second.read() as view:
        assert view.get_kv("k") == 1
        with first.transaction() as tx:
            tx.set_kv("k", 2, 0.0)
        assert view.get_kv("k") == 1
    with second.read() as view:
        assert view.get_kv("k") == 2


def test_connections_the_server_dropped_are_replaced(two: tuple[Store, Store], pg_server: PgServer) -> None:
    first, _ = two
    with first.transaction() as tx:
        tx.set_kv("k", 1, 0.0)
    dbname = first.shown.rsplit("/", 1)[1]  # type: ignore[attr-defined]
    with pg_server.connect() as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    assert ended  # the store's pooled connections are gone
    with first.transaction() as tx:  # a restarted server, a failover: the next command works
        tx.set_kv("k", 2, 0.0)
    with first.read() as tx:
        assert tx.get_kv("k") == 2


def test_a_reader_never_waits_behind_this_process_s_own_queued_writers(two: tuple[Store, Store]) -> None:
    first, second = two
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with second.transaction() as tx:
            tx.set_kv("held", True, 0.0)
            holding.set()
            release.wait(10)

    def queued() -> None:
        with contextlib.suppress(StoreError), first.transaction(timeout=5) as tx:
            tx.set_kv("q", 1, 0.0)

    threads = [threading.Thread(target=holder)] + [threading.Thread(target=queued) for _ in range(POOL_MAX)]
    threads[0].start()
    assert holding.wait(10)
    for t in threads[1:]:
        t.start()
    time.sleep(0.3)  # every writer connection of `first` is taken, queueing for the lock
    try:
        started = time.monotonic()
        with first.read() as tx:
            assert tx.get_kv("held") is None
        assert time.monotonic() - started < 0.5
    finally:
        release.set()
        for t in threads:
            t.join(15)


def test_a_nul_character_postgresql_cannot_store_is_a_store_error_and_nothing_is_written(
    two: tuple[Store, Store],
) -> None:
    first, _ = two
    with pytest.raises(StoreError, match="cannot contain NUL"), first.transaction() as tx:
        tx.set_kv("before", 1, 0.0)
        tx.set_flag("prod", "f", True, Actor("alice"), "reason with \x00 inside", 1.0)
    with first.read() as tx:
        assert tx.get_kv("before") is None and tx.list_flags() == []
