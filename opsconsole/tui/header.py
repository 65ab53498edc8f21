"""The status line that is always there: environment, engine, kill switch, trouble (the store, the
notifications), a store login that is a superuser, the team on a shared store (who leads, how many
consoles), who you are."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from .format import safe

if TYPE_CHECKING:
    from opsconsole.engine import KillState


class StatusHeader(Static):
    """One line; production and an engaged kill switch look different, always."""

    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $panel; color: $foreground; }
    StatusHeader.-production { background: $error 40%; }
    StatusHeader.-killed { background: $error; color: $text; text-style: bold; }
    """

    _shown: tuple[object, ...] | None = None
    """What the line last showed (its text, spans and classes): an unchanged status writes nothing."""

    def _put(self, line: Text) -> None:
        """Static.update repaints (and writes the line to the terminal) even when nothing changed; the
        status is re-read on every engine tick, so skip a line that looks exactly as it does."""
        key = (line.plain, tuple(line.spans), str(line.style), tuple(sorted(self.classes)))
        if key != self._shown:
            self._shown = key
            self.update(line)

    def opening(self, environment: str) -> None:
        """Before the engine is open: say so, claim nothing about its state."""
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(" opsconsole ", style="bold")
        line.append("│ ")
        if environment:
            line.append(f"{safe(environment)} │ ")
        line.append("engine: opening … │ kill: unknown until open")
        self._put(line)

    def show(
        self,
        *,
        environment: str,
        production: bool,
        engine: str,
        kill: KillState,
        engine_note: str = "",
        user: str,
        role: str,
        read_only: bool,
        kill_hint: str = "",
        team: str = "",
    ) -> None:
        self.set_class(production, "-production")
        self.set_class(bool(kill.engaged), "-killed")
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(" opsconsole ", style="bold")
        if read_only:
            line.append("READ-ONLY ", style="bold reverse")
        line.append("│ ")
        # Production is marked by more than colour: NO_COLOR and 16-colour terminals must see it too.
        line.append(
            safe(environment.upper() if production else environment),
            style="bold reverse" if production else "",
        )
        line.append(" ")
        line.append(f"│ engine: {engine} ")
        if kill.engaged:
            line.append(
                f"│ KILL SWITCH ENGAGED by {safe(kill.by)}: {safe(kill.reason)} ", style="bold reverse"
            )
        else:
            # The footer can run out of columns at 80; the kill key must never be the thing cut off.
            line.append(f"│ kill: off ({safe(kill_hint)}) " if kill_hint else "│ kill: off ")
        # What the engine waits on ("store busy since 14:02:11") and notifications that did not get
        # through ("notify: 1 failed (telegram api.telegram.org: HTTP 401: Unauthorized)"): after the
        # kill key, which must always show.
        if engine_note:
            line.append("│ ")
            line.append(safe(engine_note), style="bold reverse")
            line.append(" ")
        # A superuser store login can rewrite anything, the audit log included: the console says so as
        # long as it runs (Engine.login_warning, from the identity code; the whole text in the tooltip).
        warning = self._login_warning()
        if warning:
            line.append("│ ")
            line.append(safe(warning.partition(":")[0].removeprefix("the store's ")), style="bold reverse")
            line.append(" ")
        self.tooltip = safe(warning) if warning else None
        # On a shared store: "leader: host pid 12 │ 3 consoles" (names from the server: escaped).
        if team:
            line.append(f"│ {safe(team)} ")
        line.append(f"│ {safe(user)} ({role})")
        self._put(line)

    def _login_warning(self) -> str:
        """The engine's warning about its store login ("" for none, or before there is an engine)."""
        try:
            engine = getattr(self.app, "engine", None)
        except Exception:  # not mounted in an app (yet)
            return ""
        warning = getattr(engine, "login_warning", None)
        return warning if isinstance(warning, str) else ""
