"""Start a plan: pick one of the configured plans, give a reason."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ..format import plain
from ..handle import ConsoleAccess


class StartPlanScreen(ConsoleAccess, ModalScreen[None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def compose(self) -> ComposeResult:
        engine = self.ops.engine
        with Vertical(classes="dialog -wide"):
            yield Static("Start a plan", classes="dialog-title")
            options = [
                Option(
                    plain(f"{p.name} · {len(p.phases)} phases: {', '.join(ph.name for ph in p.phases)}"),
                    id=p.name,
                )
                for p in engine.config.plans.values()
            ]
            yield OptionList(*options, id="plans")
            yield Input(placeholder="reason (optional)", id="reason")
            yield Static(
                "Enter on a plan, then Enter in the reason starts it · Esc cancels", classes="dialog-keys"
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        plans = self.query_one("#plans", OptionList)
        if plans.highlighted is None:
            self.app.notify("Choose a plan first", severity="warning")
            plans.focus()
            return
        plan = plans.get_option_at_index(plans.highlighted).id
        engine = self.ops.engine
        self.ops.run_engine(
            engine.start_rollout, plan, event.value.strip(), action=f"Start {plan}", done=f"started {plan}"
        )
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
