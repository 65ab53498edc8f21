"""Live updates in team mode (issue 15, items 4 and 5): a change committed by another process on the
shared PostgreSQL store reaches this process's engine bus, its console and this host's flag files
within one second; a listening connection the server drops is noticed, and the resync on
reconnection catches what was committed meanwhile.

The other process is a real one (multiprocessing, spawn) with a workspace of its own, as another
machine's console would be; waits are bounded.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opsconsole.engine import live
from opsconsole.engine.events import EngineEvent
from tests.pg.server import PASSWORD, PgServer
from tests.store.conftest import fresh_pg_database
from tests.team.live_support import flag_in_file, flip_flags, open_engine, write_workspace
from tests.tui.conftest import console, screen_text, sync, until

REPO = Path(__file__).resolve().parents[2]
WITHIN = 1.0
"""Issue 15: a change made anywhere is seen everywhere within one second."""


class Other:
    """A process of its own flipping a flag on the shared store when told."""

    def __init__(self, ws: Path, values: list[bool], user: str = "bob") -> None:
        ctx = multiprocessing.get_context("spawn")
        self.go, self.out = ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(
            target=flip_flags, args=(str(ws), user, "dark_mode", values, self.go, self.out)
        )
        self.proc.start()
        kind, got = self.out.get(timeout=60)
        assert kind == "ready", got

    def flip(self) -> tuple[bool, float]:
        """Let it make its next change; (the value, the wall time just before its command)."""
        self.go.set()
        value, before = self.out.get(timeout=30)
        assert value != "error", before
        return value, before

    def close(self) -> None:
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


@pytest.fixture
def team_url(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the session's server (its password from PGPASSWORD, as in production)."""
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    name = fresh_pg_database(pg_server, "live")
    yield pg_server.dsn(name)
    pg_server.drop(name)


@pytest.fixture
def other(tmp_path: Path, team_url: str) -> Iterator[Callable[[list[bool]], Other]]:
    made: list[Other] = []

    def make(values: list[bool]) -> Other:
        write_workspace(tmp_path / "ws-other", team_url)
        made.append(Other(tmp_path / "ws-other", values))
        return made[-1]

    yield make
    for o in made:
        o.close()


def wait_for(check: Callable[[], object], what: str, seconds: float) -> float:
    """Poll `check` every 5 ms; the wall time it first held, or fail naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(0.005)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


@pytest.mark.timeout(120)
def test_flag_change_in_another_process_reaches_the_bus_and_this_hosts_files(
    tmp_path: Path, team_url: str, other: Callable[[list[bool]], Other]
) -> None:
    ws = tmp_path / "ws-here"
    write_workspace(ws, team_url)
    engine = open_engine(ws, "alice")
    events: list[tuple[float, EngineEvent]] = []
    engine.bus.subscribe(lambda e: events.append((time.time(), e)))
    feed = live.start(engine)
    assert feed is not None
    try:
        assert feed.connected.wait(10), feed.stats
        # The first refresh writes this host's files from the shared state.
        wait_for(lambda: flag_in_file(ws, "dark_mode") is False, "the first export", 5)
        o = other([True, False, True])
        for _ in range(3):
            events.clear()
            value, before = o.flip()
            seen = wait_for(lambda v=value: flag_in_file(ws, "dark_mode") is v, f"dark_mode={value} here", 5)
            assert seen - before <= WITHIN, f"file {seen - before:.3f} s after the change"
            # export_flags publishes after its files are written: the event may trail the file.
            wait_for(lambda: any(e.kind == "flags" for _, e in events), "the flags event", 5)
            bus = next(t for t, e in events if e.kind == "flags")
            assert bus - before <= WITHIN
        assert feed.stats.notices >= 3 and feed.stats.exports >= 3
    finally:
        feed.stop()
        engine.close()


@pytest.mark.timeout(120)
def test_own_changes_are_not_refreshed_twice(tmp_path: Path, team_url: str) -> None:
    ws = tmp_path / "ws-here"
    write_workspace(ws, team_url)
    engine = open_engine(ws, "alice")
    feed = live.start(engine)
    assert feed is not None
    try:
        assert feed.connected.wait(10)
        wait_for(lambda: feed.stats.refreshes >= 1, "the first refresh", 5)
        engine.set_flag("staging", "dark_mode", True, "mine")
        wait_for(lambda: feed.stats.own >= 1, "our own notice", 5)
        assert feed.stats.notices == 0 and flag_in_file(ws, "dark_mode") is True
    finally:
        feed.stop()
        engine.close()


@pytest.mark.timeout(120)
def test_a_dropped_listener_reconnects_and_the_resync_catches_a_change_made_meanwhile(
    tmp_path: Path, team_url: str
) -> None:
    ws = tmp_path / "ws-here"
    write_workspace(ws, team_url)
    engine = open_engine(ws, "alice")
    # A long first backoff: the change below is certainly made while nobody listens.
    feed = live.LiveFeed(engine, backoff_first=1.5).start()
    writer = open_engine(write_workspace(tmp_path / "ws-other", team_url).parent, "bob")
    try:
        assert feed.connected.wait(10)
        wait_for(lambda: flag_in_file(ws, "dark_mode") is False, "the first export", 5)
        backend = feed.backend_pid
        with psycopg.connect(team_url, password=PASSWORD, autocommit=True) as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s)", (backend,)).fetchone() == (True,)
        wait_for(lambda: not feed.connected.is_set(), "the drop to be noticed", 5)
        assert feed.status.connected is False and "live: reconnecting" in feed.status.text()
        notices = feed.stats.notices
        writer.set_flag("staging", "dark_mode", True, "while the listener was away")
        wait_for(lambda: flag_in_file(ws, "dark_mode") is True, "the change after reconnection", 10)
        assert feed.stats.reconnects == 1 and feed.stats.notices == notices  # the resync, not a notice
        assert feed.connected.is_set() and feed.backend_pid != backend
    finally:
        feed.stop()
        writer.close()
        engine.close()


@pytest.mark.timeout(120)
def test_a_missed_notice_is_caught_by_the_periodic_resync(
    tmp_path: Path, team_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsconsole.engine.store import postgres

    ws = tmp_path / "ws-here"
    write_workspace(ws, team_url)
    engine = open_engine(ws, "alice")
    feed = live.LiveFeed(engine, resync_every=0.5).start()
    writer = open_engine(write_workspace(tmp_path / "ws-other", team_url).parent, "bob")
    try:
        assert feed.connected.wait(10)
        wait_for(lambda: flag_in_file(ws, "dark_mode") is False, "the first export", 5)
        # The writer's notice goes where nobody listens: as good as lost.
        monkeypatch.setattr(postgres, "CHANNEL", "nobody_listens_here")
        writer.set_flag("staging", "dark_mode", True, "unannounced")
        wait_for(lambda: flag_in_file(ws, "dark_mode") is True, "the resync", 3)
        assert feed.stats.notices == 0 and feed.stats.reconnects == 0 and feed.stats.refreshes >= 2
    finally:
        feed.stop()
        writer.close()
        engine.close()


@pytest.mark.timeout(120)
def test_kill_switch_pulled_elsewhere_makes_this_hosts_files_safe_within_a_second(
    tmp_path: Path, team_url: str
) -> None:
    ws = tmp_path / "ws-here"
    write_workspace(ws, team_url)
    engine = open_engine(ws, "alice")
    feed = live.start(engine)
    assert feed is not None
    writer = open_engine(write_workspace(tmp_path / "ws-other", team_url).parent, "carol")
    try:
        assert feed.connected.wait(10)
        writer.set_flag("staging", "search_v2", True, "on")
        wait_for(lambda: flag_in_file(ws, "search_v2") is True, "search_v2 on here", 5)
        before = time.time()
        writer.kill("incident on the other host")
        seen = wait_for(lambda: flag_in_file(ws, "search_v2") is False, "the kill here", 5)
        assert seen - before <= WITHIN, f"safe here {seen - before:.3f} s after the kill"
        assert json.loads((ws / "flags" / "staging.json").read_text())["emergency_shutdown"] is True
    finally:
        feed.stop()
        writer.close()
        engine.close()


@pytest.mark.timeout(120)
def test_header_counts_consoles_and_names_the_leader(tmp_path: Path, team_url: str) -> None:
    ws = tmp_path / "ws-here"
    write_workspace(ws, team_url)
    engines = [open_engine(ws, "alice") for _ in range(3)]
    feeds = [live.LiveFeed(e, resync_every=0.2).start() for e in engines]
    engine_feed = live.LiveFeed(open_engine(ws, "carol"), "engine", resync_every=0.2).start()
    leader = psycopg.connect(
        team_url, password=PASSWORD, autocommit=True, application_name="opsconsole-leader hostx pid 4242"
    )
    try:
        leader.execute("SELECT pg_advisory_lock(%s)", (live.LEADER_LOCK,))
        # Consoles are counted by process (their listening connections' distinct application names):
        # three feeds of this one process are one console, and an engine's feed is none.
        wait_for(lambda: feeds[0].status.leader == "hostx pid 4242", "the leader", 5)
        assert feeds[0].status.consoles == 1
        assert "leader: hostx pid 4242 │ 1 console" in feeds[0].status.text()
        leader.execute("SELECT pg_advisory_unlock(%s)", (live.LEADER_LOCK,))
        wait_for(lambda: feeds[0].status.leader == "", "no leader", 5)
        assert "leader: none" in feeds[0].status.text()
    finally:
        leader.close()
        for f in (*feeds, engine_feed):
            f.stop()
        for e in (*engines, engine_feed.engine):
            e.close()


@sync
async def test_flag_change_in_another_process_appears_in_the_console_within_a_second(
    tmp_path: Path, team_url: str, other: Callable[[list[bool]], Other]
) -> None:
    ws = tmp_path / "ws-here"
    write_workspace(ws, team_url, interval="60s")
    engine = open_engine(ws, "alice")
    app = console(engine, environment="staging")
    o = other([True])
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: bool(getattr(app.panes.get("flags"), "states", None)), "flags")
        await until(
            pilot, lambda: app.session.live is not None and app.session.live.connected.is_set(), "live"
        )
        pane: Any = app.panes["flags"]
        assert pane.states["dark_mode"].value is False
        await until(pilot, lambda: "1 console" in str(app.header.render()), "the header's team", 8)
        result: list[tuple[bool, float]] = []
        flipper = threading.Thread(target=lambda: result.append(o.flip()))
        flipper.start()
        await until(pilot, lambda: pane.states["dark_mode"].value is True, "the change on screen", 5)
        seen = time.time()
        flipper.join(10)
        ((_, before),) = result
        assert seen - before <= WITHIN, f"on screen {seen - before:.3f} s after the change"


@pytest.mark.timeout(120)
def test_headless_engine_writes_its_hosts_flag_files_when_another_process_changes_a_flag(
    tmp_path: Path, team_url: str
) -> None:
    """`opsconsole engine` on one host (ticking only every 30 s here, so its tick cannot be what
    writes the file) follows a flag change made by another process within one second."""
    ws = tmp_path / "ws-engine"
    config = write_workspace(ws, team_url)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "engine", "--config", str(config), "--workspace", str(ws)]
        + ["--interval", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    writer = open_engine(write_workspace(tmp_path / "ws-other", team_url).parent, "bob")
    try:
        wait_for(lambda: flag_in_file(ws, "dark_mode") is False, "the engine's first export", 30)
        wait_for(lambda: _console_count(team_url, "engine") == 1, "the engine's listener", 10)
        for value in (True, False):
            before = time.time()
            writer.set_flag("staging", "dark_mode", value, "from another host")
            seen = wait_for(lambda v=value: flag_in_file(ws, "dark_mode") is v, f"dark_mode={value}", 5)
            assert seen - before <= WITHIN, f"file {seen - before:.3f} s after the change"
    finally:
        writer.close()
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err


def _console_count(url: str, role: str) -> int:
    with psycopg.connect(url, password=PASSWORD, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE %s",
            (f"opsconsole {role} %",),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.timeout(60)
def test_the_store_notifies_on_commit_only_naming_the_tables_and_the_audit_head(team_url: str) -> None:
    from opsconsole.engine.model import Actor
    from opsconsole.engine.store import open_store
    from opsconsole.engine.store.postgres import CHANNEL

    store: Any = open_store(team_url)
    listener = psycopg.connect(team_url, password=PASSWORD, autocommit=True)
    try:
        listener.execute(f"LISTEN {CHANNEL}")
        actor = Actor("alice", "test")
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.set_flag("staging", "dark_mode", True, actor, "undone", 1.0)
            raise RuntimeError("rolled back")
        with store.read() as tx:
            tx.list_flags("staging")
        assert list(listener.notifies(timeout=0.3)) == []  # nothing committed, nothing said
        with store.transaction() as tx:
            tx.set_flag("staging", "dark_mode", True, actor, "kept", 1.0)
            tx.append_audit(1.0, actor, "flag.set", "flag:staging/dark_mode", {"new": True})
        (notice,) = list(listener.notifies(timeout=2, stop_after=1))
        body = json.loads(notice.payload)
        assert body["o"] == store.origin and body["s"] == 1
        assert {"flags", "flag_history", "audit"} <= set(body["t"])
        assert len(notice.payload) < 200
    finally:
        listener.close()
        store.close()


@pytest.mark.timeout(120)
def test_a_leader_in_this_process_is_named_so(tmp_path: Path, team_url: str) -> None:
    import socket

    ws = tmp_path / "ws-here"
    write_workspace(ws, team_url)
    engine = open_engine(ws, "alice")
    feed = live.LiveFeed(engine, resync_every=0.2).start()
    me = f"opsconsole-leader {socket.gethostname()} pid {os.getpid()}"
    leader = psycopg.connect(team_url, password=PASSWORD, autocommit=True, application_name=me)
    try:
        leader.execute("SELECT pg_advisory_lock(%s)", (live.LEADER_LOCK,))
        wait_for(lambda: feed.status.leader_is_me, "this process as the leader", 5)
        assert feed.status.text() == "leader: this console │ 1 console"
    finally:
        leader.close()
        feed.stop()
        engine.close()


@sync
async def test_a_rollout_started_elsewhere_appears_in_the_console_within_a_second(
    tmp_path: Path, team_url: str
) -> None:
    ws = tmp_path / "ws-here"
    write_workspace(ws, team_url, interval="60s")
    engine = open_engine(ws, "alice")
    writer = open_engine(write_workspace(tmp_path / "ws-other", team_url).parent, "bob")
    app = console(engine, environment="staging")
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await until(
                pilot, lambda: app.session.live is not None and app.session.live.connected.is_set(), "live"
            )
            await pilot.pause(0.3)
            before = time.time()
            r = writer.start_rollout("darkmode", "from another host")
            await until(pilot, lambda: r.id in screen_text(app), "the rollout on screen", 5)
            assert time.time() - before <= WITHIN
    finally:
        writer.close()
