"""The console application: wiring only. Panes live in panes/, modal screens in screens/.

The first frame does not wait for the engine. `opsconsole` hands the app an `opener` and a `look`;
the app paints its header, a light tab strip (layout.FirstTabs), the Rollouts pane with the rows
the store reader vouches for (engine/firstlook.py: the store read-only, no engine import; empty when
it cannot vouch for them) and the key bar; right after that frame the real tabs replace the strip
and the pane in one repaint that changes no visible cell (_swap_in_tabs). Then a worker thread opens the engine (imports, configuration, store), takes the
runner's lock and reads the kill switch and the rollouts; the next frame shows them. The runner
starts ticking and the other panes load after that frame. A bad configuration ends the app with the
error the CLI prints (`load_error`). Tests and the demo pass an engine that is already open.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import Provider

from opsconsole.textsafe import visible

from .actions import GuardedActions
from .bridge import EngineChanged, connect
from .format import safe
from .header import StatusHeader
from .keybar import KeyBar
from .themes import follow_themes, install_themes
from .widgets.fitted_table import FittedTable

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel
    from textual.widget import Widget

    from opsconsole.engine import Engine, FirstLook, KillState, Rollout, Session

    from .handle import ConsoleHandle
    from .panes.rollouts import RolloutsPane


def _console_commands() -> type[Provider]:
    from .commands import ConsoleCommands  # the palette's module loads when the palette first opens

    return ConsoleCommands


NOTIFY_LIMIT = 500
FOCUS_WAIT = 10.0
"""Seconds a pane key pressed before its pane was mounted waits for it (then the key did nothing)."""
"""Characters of a toast's message; a 100 kB reason is cut, saying how much more there was."""


class OpsConsoleApp(GuardedActions, App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = {_console_commands}

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
        engine: Engine | None = None,
        *,
        opener: Callable[[], Engine] | None = None,
        look: Callable[[], FirstLook | None] | None = None,
        environment: str | None = None,
        run_engine: bool = True,
        theme: str | None = None,
        themes_dir: Path | None = None,
        theme_cache: Path | None = None,
    ) -> None:
        super().__init__()
        if (engine is None) == (opener is None):
            raise TypeError("OpsConsoleApp needs an engine or an opener, not both")
        self._engine: Engine | None = None
        self._session: Session | None = None
        self._opener = opener
        self._look = look
        self._requested_environment = environment
        self._run_engine = run_engine
        self.environment = environment or ""
        self._unsubscribe: Callable[[], None] | None = None
        self.panes: dict[str, Widget] = {}
        """The panes that are there to use, by id: the Rollouts pane once the engine is open, the
        others once their modules have loaded."""
        self._rollouts: RolloutsPane | None = None
        self._wanted: str | None = None
        self._asked_for: str | None = None
        """The pane a key (or the palette) last asked for: the one a pane mounting late may focus."""
        """A pane asked for (1-5) before its module had loaded: shown once it is mounted."""
        self.kill_engaged = False
        self._kill_pending = False
        self._status: tuple[KillState, str] | None = None
        """The kill switch state and engine note the header shows, kept for a team-only update."""
        self._tabs_ready = engine is not None
        self._swapping = False
        """The real tabbed panes are in (the first frame has a light strip: _swap_in_tabs)."""
        self._opened_early: (
            tuple[Engine, Session, tuple[list[Rollout], dict[str, int]], KillState, str] | None
        ) = None
        """What the engine's opening read, when it came before the real tabs."""
        self.load_error: BaseException | None = None
        """Why the engine could not be opened (the app has exited; the CLI reports it)."""
        self._theme_problems = install_themes(self, theme, themes_dir, cache=theme_cache)
        if engine is not None:
            self._attach_engine(engine)

    @property
    def opened(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the workspace is still opening")
        return self._engine

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the workspace is still opening")
        return self._session

    def _attach_engine(self, engine: Engine, session: Session | None = None) -> None:
        self._engine = engine
        self._session = session or self._new_session(engine)
        self.environment = self._requested_environment or _default_environment(engine)
        self.set_keymap({"kill-switch": engine.config.kill_key})

    def _new_session(self, engine: Engine) -> Session:
        from opsconsole.engine import Session

        # A read-only console observes: it never runs the runner, which would change rollouts.
        return Session(engine, run_engine=self._run_engine and not engine.authz.read_only)

    # ------------------------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        self.header = StatusHeader(id="status")
        yield self.header
        if self.opened:
            from .layout import build_panes

            tabs, self.panes = build_panes()
            yield tabs
        else:
            yield from self._first_frame()
        yield KeyBar(id="keys")

    def _first_frame(self) -> ComposeResult:
        """Before the engine is open: a light tab strip and the Rollouts pane, with the rows the
        store reader vouches for. The real tabbed panes replace both right after this frame
        (_swap_in_tabs): building and laying them out is a third of the way to the first paint.
        The Rollouts pane is in the first frame even before the engine is open: mounting it later
        would parse widget CSS and lay the screen out again on the way to the frame that shows
        the rollouts."""
        from .layout import FirstTabs
        from .panes.rollouts import RolloutsPane

        self._rollouts = RolloutsPane(id="rollouts")
        look = None
        if self._look is not None:
            try:
                look = self._look()
            except Exception:  # noqa: BLE001 - a preview never stops the console: the engine's rows follow
                look = None
        if look is not None:
            self._rollouts.first_rows = look.rows
            if not self.environment:
                # What _default_environment will say: the first production one, else the first.
                named = list(look.environments)
                self.environment = next((n for n in named if look.environments[n]), named[0] if named else "")
        yield FirstTabs(id="first-tabs")
        yield self._rollouts

    def on_mount(self) -> None:
        follow_themes(self, self._theme_problems)
        if self.opened:
            self._engine_ready()
        else:
            self.header.opening(self.environment)
            assert self._rollouts is not None
            # Focused in the first frame: focusing it later would restyle the screen on the way to
            # the frame with the rollouts.
            self._rollouts.focus()
            # Its tables' columns fitted to the width the layout will give them (the screen's):
            # fitted on their first Resize instead, the first frame would show them at their
            # least, then jump.
            for table in self._rollouts.query(FittedTable):
                table.fit(self.size.width)
            # The engine's imports would share the interpreter with the first frame: they start
            # once it is on the screen, and so does the swap to the real tabs (on the app's queue,
            # so keys pressed meanwhile are handled after it, by the real tabs and pane).
            self.call_after_refresh(self._open_engine)
            self.call_after_refresh(self.call_later, self._swap_in_tabs)
            # A screen pushed before that frame (help, typed ahead) holds the refresh callbacks of
            # the screen beneath until it closes; the swap does not wait for that.
            self.screen_change_signal.subscribe(self, lambda _screen: self.call_later(self._swap_in_tabs))

    async def _swap_in_tabs(self) -> None:
        """Replace the first frame's tab strip and Rollouts pane with the real tabbed panes (their
        own Rollouts pane, showing the same rows, focused where the first was, cursor kept), in one
        repaint: Textual paints nothing while the app's batch is open."""
        from textual.widget import MountError
        from textual.widgets._tabs import Underline  # not re-exported; Textual is pinned (8.2.8)

        from .layout import FIRST_TAB_SPAN, first_panes

        if self._tabs_ready or self._swapping or not self.is_running:
            return  # done, under way, or closing (q, a signal, a bad configuration) first
        self._swapping = True
        old = self._rollouts
        assert old is not None
        screen = self.screen_stack[0]  # the console's own screen, whatever is over it
        strip = screen.query_one("#first-tabs")
        with self.batch_update():
            tabs, new = first_panes()
            new.first_rows = old.first_rows
            old_table = old.query_one("#rollout-table", FittedTable)
            # Nothing else takes focus in the first frame; it may still be on its way to the table.
            had_focus = screen.focused is None or screen.focused is old_table
            row = old_table.cursor_row
            widths = {table.id: table.size.width for table in old.query(FittedTable)}
            await strip.remove()
            await old.remove()
            try:
                await screen.mount(tabs, after="#status")
            except MountError:
                return  # the console began closing meanwhile
            self._rollouts = new
            # What the real tabs and table would set once laid out, set now: the repaint that ends
            # the batch shows them as the first frame did (the underline's span, the column widths).
            underline = tabs.query_one(Underline)
            underline.highlight_start, underline.highlight_end = FIRST_TAB_SPAN
            for fitted in new.query(FittedTable):
                fitted.fit(widths.get(fitted.id))
            table = new.query_one("#rollout-table", FittedTable)
            if row and row < table.row_count:
                table.move_cursor(row=row, animate=False)
            if had_focus:
                screen.set_focus(table)  # now, not after the batch (Widget.focus waits a turn)
        self._tabs_ready = True
        self.screen_change_signal.unsubscribe(self)
        if self._opened_early is not None:
            got, self._opened_early = self._opened_early, None
            self._opened(*got)

    @work(thread=True, exclusive=True, group="open")
    def _open_engine(self) -> None:
        """Everything the frame with the rollouts needs, in one go off the event loop: the engine,
        the session's runner lock (the header says "local" only once it is ours), the kill switch's
        state and the rollouts."""
        from .panes.rollouts import RolloutsPane

        assert self._opener is not None
        try:
            engine = self._opener()
            session = self._new_session(engine)
            session.prepare()
            first = RolloutsPane.read(engine)
            kill = engine.kill_state()
            note = session.health_note()
        except BaseException as exc:  # noqa: BLE001 - every failure ends the app with its message
            self.call_from_thread(self._open_failed, exc)
            return
        self.call_from_thread(self._opened, engine, session, first, kill, note)

    def _open_failed(self, exc: BaseException) -> None:
        self.load_error = exc
        self.exit(return_code=2)

    def _opened(
        self,
        engine: Engine,
        session: Session,
        first: tuple[list[Rollout], dict[str, int]],
        kill: KillState,
        note: str,
    ) -> None:
        if not self._tabs_ready:
            # The engine opened before the real tabs were in: it takes over once they are.
            self._opened_early = (engine, session, first, kill, note)
            return
        assert self._rollouts is not None
        self._attach_engine(engine, session)
        self._unsubscribe = connect(self.engine, self.post_message)
        self.panes["rollouts"] = self._rollouts
        self._rollouts.apply(first[0], True, first[1])
        self._show_status(kill, note)
        self.refresh_bindings()
        # The runner's first tick and the other panes wait until the frame with the rollouts is on
        # the screen.
        self.call_after_refresh(self._after_engine_frame)
        if self._kill_pending:
            self._kill_pending = False
            if self.engine.can("kill_switch.engage"):
                self.action_kill_switch()
            else:
                self.notify("Kill switch: this session may not engage it.", severity="error", timeout=8)

    def _engine_ready(self) -> None:
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

    def _after_engine_frame(self) -> None:
        if not gc.isenabled():
            # run_console turned the collector off on the way here: what was built so far stays
            # (frozen out of its passes) and it runs again from now on.
            gc.freeze()
            gc.enable()
        if self.session.mode == "stopped":
            return  # quit before this frame: on_unmount stopped the prepared session
        self.session.launch()  # prepared while opening
        self._load_panes()

    @work(thread=True, exclusive=True, group="panes")
    def _load_panes(self) -> None:
        from opsconsole.engine import save_first_look

        from .layout import later_pane_classes
        from .screens import killswitch  # noqa: F401 - the kill key's dialog first: ready when pressed

        classes = later_pane_classes()  # their modules load here, not on the event loop
        if self._look is not None and not self.engine.authz.read_only:
            save_first_look(self.engine)  # for the next console's first frame
        self.call_from_thread(self.call_later, self._mount_panes, classes)

    def _mount_panes(self, classes: dict[str, type[Widget]]) -> None:
        """Mount the first of `classes` into its tab, the rest after the next refresh: one pane per
        turn, none awaited here, so a key pressed meanwhile (the kill key) is handled between them
        rather than after all of them."""
        from textual.widget import MountError
        from textual.widgets import TabPane

        if not classes:
            gc.freeze()  # as in _start_session
            return
        if not self.is_running:
            return  # closing (q, a signal) before the panes were there: nothing to add
        pane_id, cls = next(iter(classes.items()))
        pane = cls(id=pane_id)
        try:
            self.query_one(f"#tab-{pane_id}", TabPane).mount(pane)
        except MountError:
            return  # the console began closing meanwhile
        self.panes[pane_id] = pane
        if self._wanted == pane_id:
            self._wanted = None
            self.action_show_pane(pane_id)  # focuses it once it is mounted
        self.call_after_refresh(self._mount_panes, {k: v for k, v in classes.items() if k != pane_id})

    async def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._session is not None:
            await self._session.stop()

    # ------------------------------------------------------------------------------------ engine

    def on_engine_changed(self, message: EngineChanged) -> None:
        if message.kind == "warning":
            # Something the engine keeps retrying (flag files on a full disk, a kill journal line set
            # aside): said once, in words, never parsed as markup.
            self.notify(
                safe(str(message.data.get("message", ""))), severity="warning", timeout=15, markup=False
            )
            return
        if message.kind == "team":
            # Who leads, how many consoles: the feed has it, nothing to read.
            if self._status is not None:
                self._show_status(*self._status)
            return
        if message.kind in ("kill_switch", "engine", "poll"):
            self.refresh_status()
        for pane in self.panes.values():
            pane.post_message(EngineChanged(message.kind, message.data))

    def refresh_status(self) -> None:
        from .calls import call

        def read() -> tuple[KillState, str]:
            return self.engine.kill_state(), self.session.health_note()

        call(
            self,
            read,
            action="Reading the kill switch state",
            done=lambda got: self._show_status(*got),
            group="status",
            exclusive=True,
            quiet=True,
        )

    def _show_status(self, kill: KillState, engine_note: str = "") -> None:
        self._status = (kill, engine_note)
        env = self.engine.config.environments.get(self.environment)
        mode = {"runner": "local", "client": "attached", "stopped": "stopped"}[self.session.mode]
        self.header.show(
            environment=self.environment,
            production=bool(env and env.production),
            engine=mode,
            engine_note=engine_note,
            kill=kill,
            user=self.engine.actor.user,
            role=self.engine.role,
            read_only=self.engine.authz.read_only,
            team=self.session.team_text(),
            kill_hint=self.get_key_display(Binding(self.engine.config.kill_key, "kill_switch"))
            if self.engine.can("kill_switch.engage")
            else "",
        )
        # The console's own screen, not whichever modal is on top (it may be closing).
        self.screen_stack[0].set_class(kill.engaged, "-killed")
        if kill.engaged != self.kill_engaged:
            self.kill_engaged = kill.engaged
            self.refresh_bindings()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every toast is plain text with its control codes shown: toasts quote checklist items,
        reasons and refusals, which are not ours. `markup` is ignored (Textual would parse it)."""
        super().notify(
            visible(message, limit=NOTIFY_LIMIT),
            title=visible(title, limit=80),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def run_engine(
        self, fn: Callable[..., object], *args: object, action: str = "", done: str = "", **kwargs: Any
    ) -> None:
        """Run an engine command off the event loop; say what happened either way (calls.py).
        `action` names it in a failure ("Pause r-1"); without it, the engine method's name."""
        from .calls import call

        what = action or getattr(fn, "__name__", "engine call").replace("_", " ")
        call(self, fn, *args, action=what, done=done or None, group="commands", **kwargs)

    # ------------------------------------------------------------------------------------ actions

    def action_show_pane(self, pane_id: str) -> None:
        if not self.opened:
            return  # still opening the workspace
        from textual.widgets import TabbedContent

        self.query_one(TabbedContent).active = f"tab-{pane_id}"
        self._asked_for = pane_id
        pane = self.panes.get(pane_id)
        # A pane whose module is still loading (a fraction of a second after the engine's first
        # frame) is focused as soon as it is mounted.
        self._wanted = pane_id if pane is None else None
        if pane is not None:
            self._focus_when_mounted(pane)

    def _focus_when_mounted(self, pane: Widget, deadline: float | None = None) -> None:
        """Panes other than the first mount just after the first frame; a key pressed before that
        focuses the pane as soon as it is there, however long a loaded machine takes (a bound of
        0.4 s once left the Flags pane unfocused under load), unless another pane was shown since."""
        if deadline is None:
            deadline = time.monotonic() + FOCUS_WAIT
        if self._asked_for != pane.id:
            return  # another pane was asked for meanwhile: that one gets the focus
        if pane.is_mounted:
            pane.focus()
        elif time.monotonic() < deadline:
            self.set_timer(0.02, lambda: self._focus_when_mounted(pane, deadline))

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_kill_switch(self) -> None:
        from .screens.killswitch import KillSwitchScreen

        if not self.opened:
            # Still opening the workspace (a fraction of a second): the confirmation opens as soon
            # as the engine can act on it.
            self._kill_pending = True
            self.notify("Kill switch: opening the workspace; confirm in a moment.", timeout=4)
            return
        if isinstance(self.screen, KillSwitchScreen):
            self.screen.confirm()  # the kill key pressed twice: confirmed
            return
        self.push_screen(KillSwitchScreen())


def _default_environment(engine: Engine) -> str:
    envs = engine.config.environments
    for name, env in envs.items():
        if env.production:
            return str(name)
    return next(iter(envs), "none")


if TYPE_CHECKING:

    def _implements_the_handle(app: OpsConsoleApp) -> ConsoleHandle:
        return app  # mypy checks here that the app is what panes and screens are promised
