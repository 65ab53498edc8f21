"""The header on a shared store: who leads and how many consoles are attached, after the kill key
(which must always show), with names from the server escaped."""

from __future__ import annotations

from textual.app import App, ComposeResult

from opsconsole.engine import KillState
from opsconsole.engine.live import TeamStatus, _leader_name
from opsconsole.tui.header import StatusHeader
from tests.tui.conftest import sync


class HeaderApp(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusHeader()


def show(header: StatusHeader, team: str) -> None:
    header.show(
        environment="production",
        production=True,
        engine="attached",
        kill=KillState(False),
        user="alice",
        role="operator",
        read_only=False,
        kill_hint="ctrl+k",
        team=team,
    )


def test_team_status_text() -> None:
    assert TeamStatus().text() == "live: connecting"
    assert TeamStatus(error="connection refused").text() == "live: reconnecting (connection refused)"
    up = TeamStatus(connected=True, leader="db1 pid 42", consoles=3)
    assert up.text() == "leader: db1 pid 42 │ 3 consoles"
    assert TeamStatus(connected=True, consoles=1).text() == "leader: none │ 1 console"
    assert (
        TeamStatus(connected=True, leader="x", leader_is_me=True, consoles=2)
        .text()
        .startswith("leader: this process")
    )


def test_leader_name_from_application_name() -> None:
    assert _leader_name("opsconsole-leader db1 pid 42") == "db1 pid 42"
    assert _leader_name("opsconsole engine ops@db1:42") == "engine ops@db1:42"
    assert _leader_name(None) == ""


@sync
async def test_header_shows_the_team_after_the_kill_key_and_escapes_it() -> None:
    app = HeaderApp()
    async with app.run_test(size=(120, 3)) as pilot:
        header = app.query_one(StatusHeader)
        show(header, "leader: db1 pid 42 │ 3 consoles")
        await pilot.pause()
        text = str(header.render())
        assert "kill: off (ctrl+k)" in text and "leader: db1 pid 42 │ 3 consoles" in text
        assert text.index("kill: off") < text.index("leader:")
        show(header, "leader: [bold]evil\x1b[2J │ 1 console")
        await pilot.pause()
        text = str(header.render())
        assert "\x1b" not in text and "[bold]evil" in text
