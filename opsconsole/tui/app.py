"""The console application: wiring only. Panes live in panes/, modal screens in screens/."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.lazy import Lazy
from textual.widgets import TabbedContent, TabPane

from opsconsole.engine import Session

from .actions import GuardedActions
from .bridge import EngineChanged, connect
from .commands import ConsoleCommands
from .header import StatusHeader
from .keybar import KeyBar
from .panes.backups import BackupsPane
from .panes.flags import FlagsPane
from .panes.improvements import ImprovementsPane
from .panes.metrics import MetricsPane
from .panes.rollouts import RolloutsPane
from .screens.dialog import REFUSALS
from .themes import follow_themes, install_themes

PANES = (
    ("rollouts", "1 Rollouts", RolloutsPane),
    ("metrics", "2 Metrics & Alarms", MetricsPane),
    ("flags", "3 Flags", FlagsPane),
    ("improvements", "4 Improvements", ImprovementsPane),
    ("backups", "5 Backups", BackupsPane),
)


class OpsConsoleApp(GuardedActions, App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = {ConsoleCommands}

    BINDINGS = [
        Binding("1", "show_pane('rollouts')", "Rollouts", show=False, id="pane-rollouts"),
        Binding("2", "show_pane('metrics')", "Metrics", show=False, id="pane-metrics"),
        Binding("3", "show_pane('flags')", "Flags", show=False, id="pane-flags"),
        Binding("4", "show_pane('improvements')", "Improvements", show=False, id="pane-improvements"),
        Binding("5", "show_pane('backups')", "Backups", show=False, id="pane-backups"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("colon", "command_palette", "Commands", show=False, id="command-palette"),
        Binding(
            "ctrl+p", "command_palette", "Commands", show=False, priority=True, id="command-palette-ctrl"
        ),
        Binding("ctrl+backslash", "kill_switch", "KILL", priority=True, id="kill-switch"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(
        self,
        engine: Any,
        *,
        environment: str | None = None,
        run_engine: bool = True,
        theme: str | None = None,
        themes_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        # A read-only console observes: it never runs the runner, which would change rollouts.
        self.session = Session(engine, run_engine=run_engine and not engine.authz.read_only)
        self.environment = environment or _default_environment(engine)
        self._unsubscribe: Callable[[], None] | None = None
        self.panes: dict[str, Any] = {}
        self.kill_engaged = False
        self._theme_problems = install_themes(self, theme, themes_dir)
        self.set_keymap({"kill-switch": engine.config.kill_key})

    # ------------------------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        self.header = StatusHeader(id="status")
        yield self.header
        with TabbedContent(id="panes"):
            for index, (pane_id, title, cls) in enumerate(PANES):
                with TabPane(title, id=f"tab-{pane_id}"):
                    self.panes[pane_id] = cls(id=pane_id)
                    # Only the first pane is in the first frame; the others mount right after it.
                    yield self.panes[pane_id] if index == 0 else Lazy(self.panes[pane_id])
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        follow_themes(self, self._theme_problems)
        self._unsubscribe = connect(self.engine, self.post_message)
        self.refresh_status()
        self.action_show_pane("rollouts")
        # The runner's first tick (HTTP clients, scrapes, store writes) waits until the first frame
        # is on the screen: an engineer sees the console before the engine's work starts.
        self.call_after_refresh(self._start_session)

    async def _start_session(self) -> None:
        await self.session.start()
        self.refresh_status()
        # Everything built so far (modules, config, widgets) lives as long as the console: keep it out
        # of the cyclic collector's full passes, which otherwise grow with the heap and stall keys.
        gc.freeze()

    async def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.session.stop()

    # ------------------------------------------------------------------------------------ engine

    def on_engine_changed(self, message: EngineChanged) -> None:
        if message.kind in ("kill_switch", "engine", "poll"):
            self.refresh_status()
        for pane in self.panes.values():
            pane.post_message(EngineChanged(message.kind, message.data))

    @work(thread=True, exclusive=True, group="status")
    def refresh_status(self) -> None:
        kill = self.engine.kill_state()
        self.call_from_thread(self._show_status, kill)

    def _show_status(self, kill: Any) -> None:
        env = self.engine.config.environments.get(self.environment)
        mode = {"runner": "local", "client": "attached", "stopped": "stopped"}[self.session.mode]
        self.header.show(
            environment=self.environment,
            production=bool(env and env.production),
            engine=mode,
            kill=kill,
            user=self.engine.actor.user,
            role=self.engine.role,
            read_only=self.engine.authz.read_only,
            kill_hint=self.get_key_display(Binding(self.engine.config.kill_key, "kill_switch"))
            if self.engine.can("kill_switch.engage")
            else "",
        )
        # The console's own screen, not whichever modal is on top (it may be closing).
        self.screen_stack[0].set_class(kill.engaged, "-killed")
        if kill.engaged != self.kill_engaged:
            self.kill_engaged = kill.engaged
            self.refresh_bindings()

    def run_engine(self, fn: Callable[..., Any], *args: Any, done: str = "", **kwargs: Any) -> None:
        """Run an engine command off the event loop; say what happened either way."""
        self._engine_call(fn, args, kwargs, done)

    @work(thread=True, group="commands")
    def _engine_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], done: str
    ) -> None:
        try:
            fn(*args, **kwargs)
        except REFUSALS as exc:
            self.call_from_thread(
                self.notify, str(exc), title="refused", severity="error", timeout=8, markup=False
            )
            return
        if done:
            self.call_from_thread(self.notify, done, timeout=4, markup=False)

    # ------------------------------------------------------------------------------------ actions

    def action_show_pane(self, pane_id: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{pane_id}"
        self._focus_when_mounted(self.panes[pane_id])

    def _focus_when_mounted(self, pane: Any, tries: int = 20) -> None:
        """Panes other than the first mount just after the first frame; a key pressed before that
        focuses the pane as soon as it is there."""
        if pane.is_mounted:
            pane.focus()
        elif tries > 0:
            self.set_timer(0.02, lambda: self._focus_when_mounted(pane, tries - 1))

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_kill_switch(self) -> None:
        from .screens.killswitch import KillSwitchScreen

        if isinstance(self.screen, KillSwitchScreen):
            self.screen.confirm()  # the kill key pressed twice: confirmed
            return
        self.push_screen(KillSwitchScreen())


def _default_environment(engine: Any) -> str:
    envs = engine.config.environments
    for name, env in envs.items():
        if env.production:
            return str(name)
    return next(iter(envs), "none")
