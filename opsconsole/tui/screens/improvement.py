"""One improvement in full, and the dialog that decides one or several.

The detail screen shows what the agent proposed (its description escaped and cut: agent text is
untrusted), the prediction, quality and risk against this environment's threshold and tolerance,
why it cannot be approved without an admin override, who decided it and why, the evidence of its
outcome, and while it is monitored the judged metric against the baseline taken before the deploy,
as a chart, with the time left of the monitoring window.

The decision dialog approves, rejects or rolls back every improvement it is given (one, or the
rows selected for a batch) with one reason; the engine decides, a refusal stays on screen in its
words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Static

from ..calls import call
from ..format import plain, safe, utc_time
from ..handle import ConsoleAccess
from ..improvement_text import (
    FIELD_LIMIT,
    STATUS_STYLE,
    change_text,
    chart,
    description,
    impact_line,
    quality_line,
    risk_line,
    time_left,
    value_text,
)
from .dialog import ReasonDialog

if TYPE_CHECKING:
    from opsconsole.engine import Improvement, ImprovementSettings

CHART_HEIGHT = 6
LISTED = 8
"""Items a decision dialog names one by one; more are counted."""


class ImprovementDetailScreen(ConsoleAccess, ModalScreen[None]):
    # Opaque: the dialog fills the screen anyway, and a see-through modal makes Textual draw (and
    # tint) the whole queue beneath it on every frame, a third of the cost of opening the detail.
    DEFAULT_CSS = "ImprovementDetailScreen { background: $background; }"
    BINDINGS = [
        Binding("escape", "dismiss", "Back", id="back"),
        # A dialog's keys leave out the app's: help (kill switch first) must open here too.
        Binding("question_mark", "app.help", "Help", id="improvement-help"),
    ]

    def __init__(self, environment: str, improvement_id: str, item: Improvement | None = None) -> None:
        super().__init__()
        self.environment = environment
        self.improvement_id = improvement_id
        self.item = item
        self.problems: list[str] | None = None
        """Why it cannot be approved without an override; None until the engine said."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -full"):
            yield Static(
                plain(f"Improvement {self.improvement_id}"), id="improvement-title", classes="dialog-title"
            )
            with VerticalScroll(id="improvement-body"):
                yield Static(id="improvement-facts")
                yield Static(id="improvement-chart")
                yield Static(id="improvement-description")
            yield Static("Esc back · ? keys", classes="dialog-keys")

    def on_mount(self) -> None:
        # The row's copy is shown at once (opening must not wait for the store); the engine's fresh
        # copy and its review problems follow (on_screen_resume, which every push sends).
        if self.item is not None:
            self.show()
        self.set_interval(1.0, self._tick)

    def show_item(self, environment: str, improvement_id: str, item: Improvement | None) -> None:
        """Show another improvement: the pane keeps one detail screen and pushes it again, so
        opening costs a repaint, not a compose and a style pass over new widgets."""
        self.environment, self.improvement_id, self.item, self.problems = (
            environment,
            improvement_id,
            item,
            None,
        )
        if not self.is_mounted:
            return
        self.query_one("#improvement-title", Static).update(plain(f"Improvement {improvement_id}"))
        self.query_one("#improvement-body", VerticalScroll).scroll_home(animate=False, immediate=True)
        self.show()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        engine, env, key = self.ops.engine, self.environment, self.improvement_id

        def read() -> tuple[Improvement, list[str]]:
            item = engine.improvement(env, key)
            return item, engine.review_problems(item)

        call(
            self,
            read,
            action=f"Reading improvement {key}",
            done=self._read,
            failed=self._failed,
            group="improvement-detail",
            exclusive=True,
        )

    def _read(self, got: tuple[Improvement, list[str]]) -> None:
        self.item, self.problems = got
        self.show()

    def _failed(self, message: str) -> None:
        self.query_one("#improvement-facts", Static).update(plain(message, wrap=True))

    def _tick(self) -> None:
        item = self.item
        if self.app.screen is self and item is not None and str(item.status) == "monitoring":
            self._show_chart(item)  # the time left

    @property
    def settings(self) -> ImprovementSettings | None:
        return self.ops.engine.config.improvements.get(self.environment)

    def show(self) -> None:
        item = self.item
        if item is None:
            return
        self.query_one("#improvement-facts", Static).update(self._facts(item))
        self._show_chart(item)
        body = Text()
        body.append("Description\n", style="bold")
        body.append_text(description(item.proposal.description or "(none)"))
        self.query_one("#improvement-description", Static).update(body)

    def _facts(self, item: Improvement) -> Text:
        p, settings = item.proposal, self.settings
        status = str(item.status)
        text = Text()
        text.append_text(plain(p.title, "bold", wrap=True))
        text.append("\n")
        text.append(status, style=STATUS_STYLE.get(status, "bold"))
        facts = [p.kind.replace("_", " "), f"tenant {p.tenant or '-'}", f"component {p.component or '-'}"]
        facts.append(f"from the {item.source}")
        if p.agent_status:
            facts.append(f"agent says {p.agent_status}")
        text.append_text(plain(" · " + " · ".join(facts), wrap=True))
        text.append("\nPredicted: ")
        text.append_text(plain(impact_line(item), wrap=True))
        quality, q_ok = quality_line(item, settings)
        risk, r_ok = risk_line(item, settings)
        text.append("\n")
        text.append(quality, style="" if q_ok else "bold yellow")
        text.append(" · ")
        text.append(risk, style="" if r_ok else "bold yellow")
        text.append("\nReview: ")
        if self.problems is None:
            text.append("checking…", style="dim")
        elif not self.problems:
            text.append("no problems: an approver may approve it", style="green")
        else:
            text.append("needs an admin override: ", style="bold yellow")
            text.append_text(plain("; ".join(self.problems), wrap=True))
        if item.reviewer:
            when = f" at {utc_time(item.decided_at)} UTC" if item.decided_at is not None else ""
            override = " (admin override)" if item.override else ""
            text.append("\nDecided by ")
            text.append_text(plain(f"{item.reviewer}{when}{override}: {item.reason or '-'}", wrap=True))
        elif item.reason:
            text.append("\nReason: ")
            text.append_text(plain(item.reason, wrap=True))
        if item.evidence:
            text.append("\nEvidence: ")
            text.append_text(plain(safe(item.evidence)[: FIELD_LIMIT * 4], wrap=True))
        if item.error:
            text.append("\nAgent error: ", style="bold red")
            text.append_text(plain(safe(item.error)[:FIELD_LIMIT], wrap=True))
        times = [f"proposed {utc_time(item.proposed_at)}"] if item.proposed_at else []
        if item.deployed_at is not None:
            times.append(f"deployed {utc_time(item.deployed_at)}")
        if item.finished_at is not None:
            times.append(f"finished {utc_time(item.finished_at)}")
        if times:
            text.append("\n")
            text.append_text(plain(" · ".join(times) + " UTC", "dim", wrap=True))
        return text

    def _show_chart(self, item: Improvement) -> None:
        widget = self.query_one("#improvement-chart", Static)
        if item.baseline is None and not item.samples:
            if widget.display:
                widget.display = False
            return
        widget.display = True
        settings = self.settings
        now = self.ops.engine.clock()
        text = Text("\n")
        text.append("Monitoring " if str(item.status) == "monitoring" else "Monitored ", style="bold")
        text.append_text(plain(item.metric or "-"))
        text.append(f"\nbaseline {value_text(item.baseline)} · now {value_text(item.observed)}")
        change = change_text(item.baseline, item.observed)
        if change:
            text.append(f" ({change})")
        if settings is not None:
            worse = "higher" if item.better == "lower" else "lower"
            text.append(f" · rolled back when {settings.rollback_threshold * 100:.0f}% {worse}")
        if str(item.status) == "monitoring":
            left = time_left(item, now)
            if left:
                text.append(f" · {left}", style="bold")
        width = max(20, min(120, self.app.size.width - 16))
        values = [s.value for s in item.samples if s.value is not None]
        top = max([*values, *([item.baseline] if item.baseline is not None else [])], default=0.0)
        low = min([*values, *([item.baseline] if item.baseline is not None else [])], default=0.0)
        lines = chart(item.samples, item.baseline, width, CHART_HEIGHT)
        for index, line in enumerate(lines):
            label = value_text(top) if index == 0 else value_text(low) if index == len(lines) - 1 else ""
            text.append(f"\n{label:>8} │{line}")
        text.append("\n         └" + "─" * width + "\n         ─ baseline   ▇ the metric, oldest on the left")
        widget.update(text)


class ImprovementDecisionScreen(ReasonDialog[bool]):
    """Approve, reject or roll back `items` with one reason."""

    CANCELLED = False
    WORDS = {"approve": "Approve", "reject": "Reject", "rollback": "Roll back"}

    def __init__(self, kind: str, environment: str, items: list[Improvement]) -> None:
        super().__init__()
        self.kind = kind
        self.environment = environment
        self.items = items

    @property
    def ids(self) -> list[str]:
        return [i.id for i in self.items]

    def compose(self) -> ComposeResult:
        word = self.WORDS[self.kind]
        count = len(self.items)
        what = f"{self.items[0].id}" if count == 1 else f"{count} improvements"
        dangerous = " -dangerous" if self.kind == "rollback" else ""
        with Vertical(classes="dialog -wide" + dangerous):
            yield Static(plain(f"{word} {what} in {self.environment}"), classes="dialog-title")
            yield Static(self._listing(), id="decision-items")
            if self.kind == "approve":
                yield Static(Text("checking the review rules…", style="dim"), id="decision-problems")
            yield Input(placeholder=f"reason to {word.lower()} (required, recorded)", id="reason")
            if self.kind == "approve":
                box = Checkbox("admin override: approve despite the review problems", id="override")
                box.display = False
                yield box
            yield Static(f"Enter: {word.lower()} · Esc cancels", classes="dialog-keys")
            yield Static(id="error", classes="dialog-error")

    def _listing(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, item in enumerate(self.items[:LISTED]):
            if index:
                text.append("\n")
            text.append_text(plain(f"{item.id} · {item.status} · {item.proposal.title}"))
        if len(self.items) > LISTED:
            text.append(f"\n… and {len(self.items) - LISTED} more", style="dim")
        return text

    def on_mount(self) -> None:
        super().on_mount()
        if self.kind == "approve":
            engine, items = self.ops.engine, self.items
            call(
                self,
                lambda: [(i.id, engine.review_problems(i)) for i in items],
                action="Checking the review rules",
                done=self._show_problems,
                group="decision-problems",
            )

    def _show_problems(self, found: list[tuple[str, list[str]]]) -> None:
        problems = [(key, why) for key, why in found if why]
        line = self.query_one("#decision-problems", Static)
        if not problems:
            line.update(Text("No review problems: an approver may approve.", style="green"))
            return
        text = Text()
        text.append(
            f"{len(problems)} of {len(found)} need an admin override to be approved:", style="bold yellow"
        )
        for key, why in problems[:LISTED]:
            text.append("\n")
            text.append_text(plain(f"{key}: {'; '.join(why)}"))
        if len(problems) > LISTED:
            text.append(f"\n… and {len(problems) - LISTED} more", style="dim")
        if self.ops.engine.role != "admin":
            text.append(f"\nYou are {self.ops.engine.role}: an admin must approve these.", style="bold")
        line.update(text)
        self.query_one("#override", Checkbox).display = True

    def submit(self, reason: str) -> None:
        engine, env, ids = self.ops.engine, self.environment, self.ids
        fn: Any
        kwargs: dict[str, Any] = {}
        if self.kind == "approve":
            fn = engine.approve_improvements
            kwargs["override"] = self.query_one("#override", Checkbox).value
        elif self.kind == "reject":
            fn = engine.reject_improvements
        else:
            fn = engine.rollback_improvements
        word = self.WORDS[self.kind]
        self.call_engine(
            fn, env, ids, reason, action=f"{word} {', '.join(ids)[:80]}", done=self._done, **kwargs
        )

    def _done(self, updated: list[Improvement]) -> None:
        word = {"approve": "approved", "reject": "rejected", "rollback": "rolled back"}[self.kind]
        names = ", ".join(safe(i.id) for i in updated[:5]) + (" …" if len(updated) > 5 else "")
        self.app.notify(f"{word}: {names or 'nothing'}", markup=False)
        self.dismiss(True)
