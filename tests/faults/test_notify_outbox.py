"""Notifications from short-lived processes arrive: every webhook goes through the store's outbox.

Finding: `opsconsole kill` from the CLI never delivered its webhook (the sending thread died with
the process; 0 of 4 arrived). A real receiver on 127.0.0.1 counts what arrives.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import cli, kill_only_workspace, spawn, wait_for

ME = pwd.getpwuid(os.getuid()).pw_name


class Receiver:
    """A webhook receiver that records every JSON body it is sent; start() and stop() at will on
    the same port (to play a receiver that is down for a while)."""

    def __init__(self, port: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.port = port
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length", "0"))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self) -> list[str]:
        return [b["event"] for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workspace(tmp_path: Path, port: int) -> Path:
    hook = f'{{kind: webhook, url: "http://127.0.0.1:{port}/hook", events: [kill_switch, all_clear], timeout: 1s}}'
    return kill_only_workspace(tmp_path, f"notifications:\n  - {hook}\n")


def outbox(ws: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(ws / "state.db") as db:
        return db.execute("SELECT event, state, attempts FROM outbox ORDER BY id").fetchall()


def test_four_cli_kills_and_all_clears_deliver_four_webhooks(tmp_path: Path, receiver: Receiver) -> None:
    ws = workspace(tmp_path, receiver.port)
    w = ("--workspace", str(ws))
    for i in range(2):
        p = cli("kill", "--reason", f"drill {i}", *w, timeout=30)
        assert p.returncode == 0, p.stderr
        p = cli("all-clear", "--reason", f"drill {i} over", *w, timeout=30)
        assert p.returncode == 0, p.stderr
    # Delivered before each command exited: no engine runs here to send them later.
    assert receiver.events() == ["kill_switch", "all_clear", "kill_switch", "all_clear"]
    assert receiver.bodies[0]["message"] == f"kill switch engaged by {ME}: drill 0"
    assert outbox(ws) == [(e, "delivered", 1) for e in receiver.events()]


def test_a_receiver_that_is_down_gets_the_kill_later_from_the_runner(tmp_path: Path) -> None:
    port = free_port()
    ws = workspace(tmp_path, port)
    w = ("--workspace", str(ws))
    p = cli("kill", "--reason", "receiver down", *w, timeout=30)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["recorded"] is True
    [(event, state, attempts)] = outbox(ws)
    assert (event, state) == ("kill_switch", "pending") and attempts >= 1  # tried, refused, kept

    receiver = Receiver(port).start()
    engine = spawn("engine", *w)
    try:
        wait_for(lambda: receiver.events(), 40, "the kill notification delivered by the runner")
        assert receiver.events() == ["kill_switch"]
        assert receiver.bodies[0]["message"] == f"kill switch engaged by {ME}: receiver down"
        wait_for(lambda: outbox(ws)[0][1] == "delivered", 10, "the outbox row marked delivered")
    finally:
        engine.terminate()
        engine.communicate(timeout=10)
        receiver.stop()
    assert outbox(ws)[0][2] >= 2  # the CLI's attempt and the runner's


def test_the_kill_switch_files_never_wait_for_a_hanging_receiver(tmp_path: Path) -> None:
    """A receiver that accepts and never answers: the files are safe at once, and the CLI gives up
    waiting for the POST after its bound."""
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    try:
        ws = workspace(tmp_path, hang.getsockname()[1])
        w = ("--workspace", str(ws))
        assert cli("status", *w).returncode == 0  # creates the store outside the timed command
        p = cli("kill", "--reason", "hanging receiver", *w, timeout=30)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert out["timings_ms"]["files"] < 1000
        doc = json.loads((ws / "flags" / "production.json").read_text())
        assert doc["emergency_shutdown"] is True
        [(_, state, _)] = outbox(ws)
        assert state == "pending"  # the 1 s timeout ran out; a runner tries again later
    finally:
        hang.close()


def test_a_receiver_that_never_comes_back_is_retried_with_pauses_then_marked_failed(tmp_path: Path) -> None:
    from opsconsole.engine.store import open_store
    from opsconsole.engine.targets import notify

    store = open_store(f"sqlite:///{tmp_path}/state.db")
    now = [1000.0]
    try:
        with store.transaction() as tx:
            [item] = notify.enqueue(
                tx, [_hook(free_port())], "kill_switch", "kill switch engaged by x: y", now[0]
            )
        for attempt in range(1, notify.MAX_ATTEMPTS + 1):
            assert notify.deliver(store, clock=lambda: now[0], budget=5) == 0
            with store.read() as tx:
                [row] = tx.list_notifications([item])
            assert row.attempts == attempt and "ConnectError" in row.last_error
            if attempt < notify.MAX_ATTEMPTS:
                assert row.state == "pending" and row.next_at == now[0] + notify.pause_after(attempt)
                assert notify.deliver(store, clock=lambda: now[0], budget=5) == 0  # not due yet
                now[0] = row.next_at
        assert row.state == "failed"
        now[0] += 3600
        assert notify.deliver(store, clock=lambda: now[0], budget=5) == 0  # never tried again
        with store.read() as tx:
            assert tx.list_notifications([item])[0].attempts == notify.MAX_ATTEMPTS
    finally:
        store.close()


def _hook(port: int) -> Any:
    from opsconsole.engine.model import Notification

    return Notification(kind="webhook", url=f"http://127.0.0.1:{port}/hook", timeout=1.0)
