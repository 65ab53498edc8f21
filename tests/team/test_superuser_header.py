"""The console's header says, for as long as it runs, when the store's login is a PostgreSQL superuser
(Engine.login_warning, set by the identity code): such a login can rewrite anything, the audit log
included. The session's test server logs in as its superuser."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from textual.app import App, ComposeResult

from opsconsole.engine import KillState
from opsconsole.tui.header import StatusHeader
from tests.pg.server import PgServer
from tests.tui.conftest import console, sync, until

from .leader_support import new_database
from .live_support import open_engine, write_workspace


def header_text(app: App[None]) -> str:
    return str(app.query_one(StatusHeader).render())


def test_the_console_on_a_superuser_store_login_says_so_in_the_header(
    tmp_path: Path, pg_server: PgServer
) -> None:
    url = new_database(pg_server)
    ws = tmp_path / "ws"
    write_workspace(ws, url)
    engine = open_engine(ws)
    try:
        assert engine.login_warning and "superuser" in engine.login_warning

        @sync
        async def run() -> None:
            app = console(engine)
            async with app.run_test(size=(200, 24)) as pilot:
                await until(pilot, lambda: "engine:" in header_text(app), "the header")
                text = header_text(app)
                assert f"login {pg_server.user} is a PostgreSQL superuser" in text, text
                assert text.index("kill: off") < text.index("superuser"), text
                header = app.query_one(StatusHeader)
                assert header.tooltip == engine.login_warning

        run()
    finally:
        engine.close()


class HeaderApp(App[None]):
    def __init__(self, warning: str | None) -> None:
        super().__init__()
        self.engine = SimpleNamespace(login_warning=warning)

    def compose(self) -> ComposeResult:
        yield StatusHeader()


def show(header: StatusHeader) -> None:
    header.show(
        environment="staging",
        production=False,
        engine="attached",
        kill=KillState(False),
        user="alice",
        role="operator",
        read_only=False,
        kill_hint="ctrl+k",
    )


@sync
async def test_no_warning_without_one_and_a_login_name_from_the_server_is_escaped() -> None:
    app = HeaderApp(None)
    async with app.run_test(size=(200, 3)) as pilot:
        show(app.query_one(StatusHeader))
        await pilot.pause()
        assert "superuser" not in header_text(app)
        assert app.query_one(StatusHeader).tooltip is None
    evil = HeaderApp("the store's login [b]x\x1b[2J is a PostgreSQL superuser: it can rewrite anything")
    async with evil.run_test(size=(200, 3)) as pilot:
        show(evil.query_one(StatusHeader))
        await pilot.pause()
        text = header_text(evil)
        assert "\x1b" not in text and "login [b]x" in text and "is a PostgreSQL superuser" in text, text
