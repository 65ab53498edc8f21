"""Notifications that do not get through are visible in `opsconsole status` (text and --json) and in
the console's header; the Telegram bot token never appears in status, logs, the audit log, errors or
the store."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from opsconsole.engine.model import Notification
from opsconsole.engine.store import open_store
from opsconsole.engine.targets import notify
from tests.faults.conftest import cli, kill_only_workspace, spawn, wait_for
from tests.tui.conftest import console, screen_text, sync, until

from .conftest import CHAT, TOKEN, TOKEN_ENV, Receiver, hook, telegram

ENV = {TOKEN_ENV: TOKEN}


def refusing_workspace(tmp_path: Path, receiver: Receiver) -> Path:
    receiver.status = 500
    items = (
        f"  - {telegram(receiver.url, '[kill_switch]')}\n"
        f"  - {hook('slack', f'{receiver.url}/services/T0/B0/sl4ck-secret', '[kill_switch]')}\n"
    )
    return kill_only_workspace(tmp_path, "notifications:\n" + items)


def give_up(ws: Path) -> None:
    """Play the end of the retries: the first row failed for good."""
    with sqlite3.connect(ws / "state.db") as db:
        db.execute(f"UPDATE outbox SET state = 'failed', attempts = {notify.MAX_ATTEMPTS} WHERE id = 1")


def test_status_shows_notifications_being_retried_and_given_up(tmp_path: Path, receiver: Receiver) -> None:
    ws = refusing_workspace(tmp_path, receiver)
    w = ("--workspace", str(ws))
    p = cli("kill", "--reason", "drill", *w, timeout=30, env=ENV)
    assert p.returncode == 0, p.stderr
    assert len(receiver.posts) == 2  # both tried, both refused

    text = cli("status", *w, env=ENV)
    assert text.returncode == 0, text.stderr
    port = receiver.port
    assert "notifications: 0 delivered, 2 pending, 0 failed" in text.stdout
    assert (
        f"retrying after 1 attempt(s): kill_switch to telegram 127.0.0.1:{port}: HTTP 500: receiver says no"
        in text.stdout
    )
    assert f"kill_switch to slack 127.0.0.1:{port}: HTTP 500" in text.stdout

    give_up(ws)
    doc = json.loads(cli("status", "--json", *w, env=ENV).stdout)["notifications"]
    assert (doc["pending"], doc["failed"], doc["retrying"], doc["failed_recently"]) == (1, 1, 1, 1)
    failed = next(t for t in doc["troubles"] if t["state"] == "failed")
    assert failed["destination"] == f"telegram 127.0.0.1:{port}"
    assert failed["event"] == "kill_switch" and failed["error"].startswith("HTTP 500")
    assert "gave up after 8 attempt(s)" in cli("status", *w, env=ENV).stdout

    # A Slack webhook's path is its secret: shown nowhere, like the token.
    for out in (text.stdout, json.dumps(doc)):
        assert TOKEN not in out and "sl4ck-secret" not in out


def test_status_says_ok_when_everything_was_delivered(tmp_path: Path, receiver: Receiver) -> None:
    ws = kill_only_workspace(tmp_path, f"notifications:\n  - {telegram(receiver.url, '[kill_switch]')}\n")
    w = ("--workspace", str(ws))
    assert cli("kill", "--reason", "drill", *w, timeout=30, env=ENV).returncode == 0
    out = cli("status", *w, env=ENV).stdout
    assert "notifications: ok (1 delivered, 0 pending, 0 failed)" in out
    doc = json.loads(cli("status", "--json", *w, env=ENV).stdout)["notifications"]
    assert (doc["configured"], doc["delivered"], doc["troubles"]) == (1, 1, [])


def test_status_says_when_no_notification_is_configured(tmp_path: Path) -> None:
    ws = kill_only_workspace(tmp_path)
    assert "notifications: none configured" in cli("status", "--workspace", str(ws)).stdout


def test_the_token_never_appears_in_status_logs_audit_errors_or_the_store(
    tmp_path: Path, receiver: Receiver
) -> None:
    ws = refusing_workspace(tmp_path, receiver)
    w = ("--workspace", str(ws))
    outputs = []
    p = cli("kill", "--reason", "drill", *w, timeout=30, env=ENV)
    outputs += [p.stdout, p.stderr]
    receiver.status = 204
    engine = spawn("engine", *w, env=ENV)
    try:
        with sqlite3.connect(ws / "state.db") as db:
            db.execute("UPDATE outbox SET next_at = 0")
        wait_for(lambda: len(receiver.posts) >= 4, 40, "the retries delivered by the engine")
    finally:
        engine.terminate()
        out, _ = engine.communicate(timeout=10)
    outputs.append(out)
    for args in (("status",), ("status", "--json"), ("audit",), ("audit", "--json"), ("config", "check")):
        q = cli(*args, *w, env=ENV)
        outputs += [q.stdout, q.stderr]
    assert any(f"/bot{TOKEN}/sendMessage" == path for path, _ in receiver.posts)  # it was used...
    for text in outputs:
        assert TOKEN not in text  # ...and shown nowhere
    assert TOKEN.encode() not in (ws / "state.db").read_bytes()
    assert not any(TOKEN.encode() in f.read_bytes() for f in ws.rglob("*") if f.is_file())


def test_httpx_log_lines_never_carry_the_token(
    tmp_path: Path, receiver: Receiver, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    try:
        n = Notification(kind="telegram", url=receiver.url, chat_id=CHAT, token_env=TOKEN_ENV, timeout=1.0)
        with caplog.at_level(logging.DEBUG):
            with store.transaction() as tx:
                ids = notify.enqueue(tx, [n], "kill_switch", "engaged", 1.0)
            assert notify.deliver(store, ids, budget=5) == 1
        assert "sendMessage" in caplog.text  # httpx said which request it made...
        assert token not in caplog.text  # ...without the token
    finally:
        store.close()


@sync
async def test_the_header_shows_notifications_that_did_not_get_through(
    tmp_path: Path, receiver: Receiver, token: str
) -> None:
    from opsconsole.engine.config import load_config
    from opsconsole.engine.core import Engine
    from opsconsole.engine.model import Actor

    ws = refusing_workspace(tmp_path, receiver)
    engine = Engine(load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)}), ws, Actor("root", "test"))
    with engine.store.transaction() as tx:
        notify.enqueue(tx, engine.config.notifications, "kill_switch", "engaged", engine.clock())
    notify.deliver(engine.store, budget=5)  # both refused
    give_up(ws)
    app = console(engine)
    async with app.run_test(size=(200, 24)) as pilot:
        await until(pilot, lambda: "notify:" in screen_text(app), "the notification note in the header")
        header = screen_text(app).splitlines()[0]
        assert "notify: 1 failed, 1 retrying (" in header and "HTTP 500" in header
        assert token not in screen_text(app) and "sl4ck-secret" not in screen_text(app)


def test_a_running_engine_tells_the_console_when_notifications_start_failing(
    tmp_path: Path, receiver: Receiver, token: str
) -> None:
    """In a console that runs the engine, the header's note comes from the runner, which reads the
    outbox and publishes an `engine` event (the header re-reads) when the note changes."""
    import asyncio

    from opsconsole.engine.config import load_config
    from opsconsole.engine.core import Engine
    from opsconsole.engine.model import Actor
    from opsconsole.engine.runner import Runner

    ws = refusing_workspace(tmp_path, receiver)
    engine = Engine(load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)}), ws, Actor("root", "test"))
    events: list[object] = []
    engine.bus.subscribe(events.append)
    runner = Runner(engine)

    async def tick() -> None:
        await runner.tick()

    asyncio.run(tick())
    assert runner.notify_note == ""
    with engine.store.transaction() as tx:
        notify.enqueue(tx, engine.config.notifications, "kill_switch", "engaged", engine.clock())
    notify.deliver(engine.store, budget=5)  # both refused
    runner._notify_read = 0.0  # the next read is due (it happens at most every NOTE_EVERY seconds)
    asyncio.run(tick())
    assert runner.notify_note.startswith("notify: 2 retrying (") and "HTTP 500" in runner.notify_note
    published = [e for e in events if getattr(e, "kind", "") == "engine" and "notify" in e.data]  # type: ignore[attr-defined]
    assert published and published[-1].data["notify"] == runner.notify_note  # type: ignore[attr-defined]
    asyncio.run(runner.observer.close())
