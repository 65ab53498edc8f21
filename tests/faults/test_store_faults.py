"""Store errors are states, not crashes: a store another process keeps locked, and a damaged database.

A writer that holds SQLite's write lock longer than the busy timeout must not stop the engine (it
says "store busy since …" and carries on when the lock is released), must not stop anyone from
reading, and a database with damaged pages is reported as a store problem naming the file (exit 5),
never as a traceback or as exit 1, which means "audit chain broken".
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from opsconsole.engine import open_engine

from .conftest import cli, engine_as, spawn, sqlite_write_lock, wait_for, write_workspace

STEPS = list(range(0, 101, 10))
PLAN = f"""
name: steps
phases:
  - name: canary
    environment: production
    strategy: {{kind: canary, flag: new_checkout, steps: {STEPS}, step_wait: 1s}}
"""
NO_SERVICE = 9  # nothing in these plans scrapes or probes the demo service
BUSY = re.compile(r"store busy since \d\d:\d\d:\d\d")


def _workspace(tmp_path: Path) -> Path:
    return write_workspace(tmp_path, NO_SERVICE, plan=PLAN)


def _status(ws: Path, *extra: str) -> tuple[int, str, str]:
    p = cli("status", "--workspace", str(ws), *extra, timeout=30)
    return p.returncode, p.stdout, p.stderr


def test_engine_keeps_running_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    eng = engine_as(ws, "bob")
    rid = eng.start_rollout("steps", "store busy test").id
    proc = spawn("engine", "--workspace", str(ws))
    try:
        wait_for(lambda: eng.rollout(rid).step_index >= 2, 40, "the canary reaching its third step")
        with sqlite_write_lock(ws / "state.db", 7):
            held = eng.rollout(rid)
            # status answers while the lock is held (it never needs the write lock) and says why the
            # engine is not moving.
            text = wait_for(lambda: (s := _status(ws))[0] == 0 and BUSY.search(s[1]) and s[1], 7, "busy")
            assert f"running (pid {proc.pid})" in text, text
            code, out, err = _status(ws, "--json")
            assert code == 0, err
            doc = json.loads(out)["engine"]
            if doc["state"] == "store_busy":  # the lock may have just been released
                assert doc["running"] and doc["pid"] == proc.pid and doc["since_epoch"] <= time.time()
            nothing_moved = eng.rollout(rid)
            assert (nothing_moved.step_index, nothing_moved.version) == (held.step_index, held.version)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        wait_for(lambda: eng.rollout(rid).step_index > held.step_index, 20, "the rollout moving on")
        assert proc.poll() is None
        wait_for(lambda: "store busy" not in _status(ws)[1], 20, "status back to running")
        code, out, _ = _status(ws, "--json")
        assert json.loads(out)["engine"]["state"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out


def _populate(ws: Path, rollouts: int = 3, flag_changes: int = 40) -> list[str]:
    """Rollouts, flag history and audit events, as a workspace has after some use."""
    eng = engine_as(ws, "alice")
    ids = []
    for i in range(rollouts):
        ids.append(eng.start_rollout("steps", f"rollout {i}").id)
        if i < rollouts - 1:  # one active rollout per flag: the earlier ones end aborted
            eng.command(ids[-1], "abort", "make room for the next")
    for i in range(flag_changes):
        eng.set_flag("staging", "new_checkout", i % 100, f"change {i} " + "x" * 200)
    eng.close()
    return ids


READERS = (
    ("status",),
    ("status", "--all"),
    ("status", "--json"),
    ("status", "--read-only"),
    ("audit",),
    ("audit", "--verify"),
    ("flags", "list"),
    ("flags", "history", "new_checkout"),
)


def test_read_commands_answer_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    rid = _populate(ws, rollouts=1, flag_changes=3)[0]
    with sqlite_write_lock(ws / "state.db", 30) as holder:
        for args in (*READERS, ("report", rid)):
            t0 = time.monotonic()
            p = cli(*args, "--workspace", str(ws), timeout=30)
            took = time.monotonic() - t0
            assert p.returncode == 0, (args, p.stderr)
            # Well under the 5 s a writer would wait for the lock before giving up.
            assert took < 4.0, (args, took)
        holder.kill()


def test_read_only_store_opens_without_the_write_lock_and_cannot_write(tmp_path: Path) -> None:
    from opsconsole.engine.store import StoreError
    from opsconsole.engine.store.sqlite import SqliteStore

    db = tmp_path / "state.db"
    SqliteStore(str(db)).close()
    with sqlite_write_lock(db, 30) as holder:
        t0 = time.monotonic()
        store = SqliteStore(str(db), read_only=True)
        assert time.monotonic() - t0 < 1.0
        try:
            with store.read() as tx:
                assert tx.list_rollouts() == []
            try:
                with store.transaction() as tx:
                    tx.set_kv("x", 1, 0.0)
            except StoreError as exc:
                assert "read-only" in str(exc)
            else:
                raise AssertionError("a read-only store accepted a write")
        finally:
            store.close()
        holder.kill()


def _corrupt_middle_leaves(db: Path) -> list[str]:
    """Overwrite one leaf page in the middle of every table and index that spans several, as a bad
    disk or a stray write into the file would: the first rows still read, the scan then fails. The
    schema and the small tables (kv, schema_version) stay intact. Returns the damaged b-trees."""
    conn = sqlite3.connect(db)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        leaves: dict[str, list[int]] = {}
        for name, pageno in conn.execute("SELECT name, pageno FROM dbstat WHERE pagetype = 'leaf'"):
            leaves.setdefault(name, []).append(pageno)
    finally:
        conn.close()
    wal = db.parent / f"{db.name}-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "the store must be checkpointed and closed"
    damaged = {name: sorted(pages)[len(pages) // 2] for name, pages in leaves.items() if len(pages) > 1}
    with open(db, "r+b") as fh:
        for pageno in damaged.values():
            fh.seek((pageno - 1) * page_size)
            fh.write(bytes([0xA5]) * page_size)
    return sorted(damaged)


def test_damaged_pages_are_a_store_error_naming_the_file_in_every_command(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    ids = _populate(ws, rollouts=20, flag_changes=200)
    db = ws / "state.db"
    damaged = _corrupt_middle_leaves(db)
    assert {"audit", "rollouts", "flag_history"} <= set(damaged), damaged
    problems = []
    for args in (
        ("audit", "--verify"),
        ("audit",),
        ("audit", "--json"),
        ("status", "--all"),
        ("status",),
        ("flags", "list"),
        ("flags", "history", "new_checkout"),
    ):
        p = cli(*args, "--workspace", str(ws), timeout=30)
        said = p.stderr.strip().splitlines()[-1:] if p.stderr else []
        if p.returncode != 5 or "Traceback" in p.stderr or f"{db}:" not in p.stderr:
            problems.append((args, p.returncode, said))
        elif "damaged" not in p.stderr:
            problems.append((args, "does not say the file is damaged", said))
    assert not problems, problems
    # A report reads one rollout's rows: intact rows give the report, damaged ones exit 5 (never 1).
    codes = set()
    for one in ids:
        p = cli("report", one, "--workspace", str(ws), timeout=30)
        assert "Traceback" not in p.stderr and p.returncode in (0, 5), (one, p.returncode, p.stderr)
        codes.add(p.returncode)
    assert 5 in codes, codes


def test_damaged_header_still_says_the_store_is_unavailable(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    _populate(ws, rollouts=1, flag_changes=1)
    db = ws / "state.db"
    with open(db, "r+b") as fh:
        fh.write(b"this is not a database file at all")
    p = cli("audit", "--verify", "--workspace", str(ws), timeout=30)
    assert p.returncode == 5, (p.stdout, p.stderr)
    assert str(db) in p.stderr and "Traceback" not in p.stderr


def test_console_shows_a_busy_store_and_never_a_step_the_store_lacks(tmp_path: Path) -> None:
    """The console's own runner (the engine inside the console) waits out the lock like the headless
    one; meanwhile the header says so, and the rollouts pane never runs ahead of the store."""
    from opsconsole.tui.app import OpsConsoleApp

    ws = _workspace(tmp_path)
    rid = engine_as(ws, "bob").start_rollout("steps", "console busy test").id
    store_view = engine_as(ws, "carol")  # what the store has, through another connection

    async def run() -> None:
        app = OpsConsoleApp(engine_as(ws, "alice"))
        async with app.run_test(size=(160, 24)) as pilot:
            pane = app.panes["rollouts"]

            async def until(predicate: Any, seconds: float, what: str) -> None:
                deadline = time.monotonic() + seconds
                while not predicate():
                    assert time.monotonic() < deadline, f"{what} not reached within {seconds} s"
                    await pilot.pause(0.1)

            await until(lambda: store_view.rollout(rid).step_index >= 2, 40, "the third step")
            assert app.session.mode == "runner"
            ahead: list[tuple[int, int]] = []
            headers: list[str] = []
            with sqlite_write_lock(ws / "state.db", 7) as holder:
                held = store_view.rollout(rid)
                while holder.poll() is None:
                    shown = pane.rollouts.get(rid)
                    stored = store_view.rollout(rid)  # read after `shown`: the store only moves on
                    if shown is not None and shown.step_index > stored.step_index:
                        ahead.append((shown.step_index, stored.step_index))
                    headers.append(str(app.header.render()))
                    await pilot.pause(0.1)
            assert not ahead, f"the pane showed steps the store did not have (shown, stored): {ahead}"
            assert any(BUSY.search(h) for h in headers), headers[-1]
            await until(lambda: store_view.rollout(rid).step_index > held.step_index, 20, "moving on")
            await until(lambda: "store busy" not in str(app.header.render()), 10, "header back")
            assert app.session.mode == "runner" and "engine: local" in str(app.header.render())

    asyncio.run(run())


def test_status_reports_a_kill_still_in_the_journal_while_the_store_is_locked(tmp_path: Path) -> None:
    """A kill pulled while the store was locked waits in the journal. A read command must not fail
    on recording it (it tries, then reads on) and must not say the switch is off."""
    ws = _workspace(tmp_path)
    _populate(ws, rollouts=1, flag_changes=1)
    with sqlite_write_lock(ws / "state.db", 20) as holder:
        p = cli("kill", "--reason", "locked store drill", "--workspace", str(ws), timeout=30)
        assert p.returncode == 5 and json.loads(p.stdout)["recorded"] is False, p.stdout + p.stderr
        assert (ws / "kill-journal.jsonl").exists()
        code, out, err = _status(ws, "--json")
        assert code == 0, err
        kill = json.loads(out)["kill_switch"]
        assert kill["engaged"] is True and kill["reason"].startswith("locked store drill"), kill
        assert kill["source"] == "journal"
        holder.kill()
    # A read command reads on; the next engine (or writing command) records it, once.
    open_engine(None, ws).close()
    p = cli("audit", "--json", "--workspace", str(ws), timeout=30)
    assert p.returncode == 0, p.stderr
    assert [e["action"] for e in json.loads(p.stdout)][-1] == "kill_switch.engage"
    assert (
        json.loads(cli("status", "--json", "--workspace", str(ws)).stdout)["kill_switch"]["source"] == "store"
    )
