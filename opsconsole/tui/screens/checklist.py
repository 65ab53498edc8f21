"""Tick a checklist item of the rollout's current phase; each tick is recorded with who and when."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from opsconsole.engine import iso, phase_of

from ..format import plain
from ..handle import ConsoleAccess

if TYPE_CHECKING:
    from opsconsole.engine import Rollout


class ChecklistScreen(ConsoleAccess, ModalScreen[None]):
    BINDINGS = [Binding("escape", "cancel", "Back", id="cancel")]

    def __init__(self, rollout: Rollout) -> None:
        super().__init__()
        self.rollout = rollout

    def compose(self) -> ComposeResult:
        engine = self.ops.engine
        r = self.rollout
        phase = phase_of(engine, r)
        items = [i for g in (phase.gates if phase else ()) if g.kind == "checklist" for i in g.items]
        ticked = {t.item: t for t in r.checklist}
        with Vertical(classes="dialog -wide"):
            yield Static(
                plain(f"Checklist of {r.id}, phase {phase.name if phase else '?'}"), classes="dialog-title"
            )
            if not items:
                yield Static("This phase has no checklist items.", classes="dialog-hint")
            options = []
            for item in items:
                t = ticked.get(item)
                label = f"[x] {item}  (by {t.user} at {iso(t.at)})" if t else f"[ ] {item}"
                options.append(Option(plain(label), id=item, disabled=t is not None))
            yield OptionList(*options, id="items")
            yield Static("Enter ticks the highlighted item · Esc back", classes="dialog-keys")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        engine = self.ops.engine
        item = event.option.id
        self.ops.run_engine(
            engine.tick_checklist,
            self.rollout.id,
            item,
            action=f"Tick {item!r} on {self.rollout.id}",
            done=f"ticked: {item}",
        )
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
