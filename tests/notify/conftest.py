"""Receivers on 127.0.0.1 for notification tests: one that records what it is sent (generic webhook,
Slack-shaped or the Telegram Bot API's sendMessage) and can refuse on demand, and one that accepts
connections and never answers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

TOKEN = "123456789:AAH-sEcReT-t0ken-never-shown_x9"
"""The bot token the tests put in the environment (a realistic shape: id, colon, secret)."""
TOKEN_ENV = "OPSCONSOLE_TEST_TELEGRAM_TOKEN"
CHAT = "-1001234567890"


class Receiver:
    """Records (path, JSON body) of every POST. `status` is what it answers (204 by default; 200 with
    the Bot API's `{"ok": true}` on a /bot<token>/sendMessage path whose token is TOKEN, 401 with
    its `{"ok": false, "description": "Unauthorized"}` for another token). `on_post(path, body)`
    runs before the answer (to look at the store at the moment a notification arrives); what it
    returns is kept in `seen`, at the post's index. Start and
    stop it at will on the same port (a receiver that is down for a while)."""

    def __init__(self, port: int = 0) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.port = port
        self.status = 204
        self.on_post: Callable[[str, dict[str, Any]], Any] | None = None
        self.seen: list[Any] = []  # what on_post returned for each post
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                look = me.on_post(self.path, body) if me.on_post is not None else None
                with me.lock:  # one index for both: handlers run on their own threads
                    me.posts.append((self.path, body))
                    me.seen.append(look)
                status, answer = me.status, b""
                if self.path.startswith("/bot") and self.path.endswith("/sendMessage") and status < 300:
                    ok = self.path == f"/bot{TOKEN}/sendMessage"
                    status = 200 if ok else 401
                    doc = (
                        {"ok": True, "result": {"message_id": len(me.posts)}}
                        if ok
                        else {
                            "ok": False,
                            "error_code": 401,
                            "description": "Unauthorized",
                        }
                    )
                    answer = json.dumps(doc).encode()
                elif status >= 300:
                    answer = b'{"ok": false, "description": "receiver says no"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self) -> list[dict[str, Any]]:
        return [b for _, b in self.posts]

    def events(self) -> list[str]:
        """The `event` of generic and Slack bodies."""
        return [str(b.get("event")) for b in self.bodies()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def hanging() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung receiver."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return TOKEN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def telegram(api: str, events: str = "[]", timeout: str = "1s") -> str:
    """One `notifications:` item (flow style) for the Telegram Bot API at `api`."""
    return (
        f'{{kind: telegram, chat_id: "{CHAT}", token_env: {TOKEN_ENV}, api_url: "{api}", '
        f"events: {events}, timeout: {timeout}}}"
    )


def hook(kind: str, url: str, events: str = "[]", timeout: str = "1s") -> str:
    return f'{{kind: {kind}, url: "{url}", events: {events}, timeout: {timeout}}}'
