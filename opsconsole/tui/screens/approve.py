"""Approve a phase promotion with the evidence in front of you: every gate's verdict and value, who
started the rollout, who approved so far, and a reason that goes into the audit log. The engine
decides; a refusal is shown here with its reason and the screen stays open."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, Static

from opsconsole.engine import phase_of

from ..format import plain, units_of, verdict_row
from ..widgets.fitted_table import FitColumn, FittedTable
from .dialog import ReasonDialog

if TYPE_CHECKING:
    from opsconsole.engine import Rollout

EVIDENCE = (
    FitColumn("gate", "Gate", 5, 18),
    FitColumn("status", "Status", 6, 7),
    FitColumn("value", "Value", 5, 12),
    FitColumn("limit", "Threshold", 5, 16),
    FitColumn("reason", "Reason", 12, 0),
)


class ApproveScreen(ReasonDialog[bool]):
    CANCELLED = False

    def __init__(self, rollout: Rollout) -> None:
        super().__init__()
        self.rollout = rollout

    def compose(self) -> ComposeResult:
        engine = self.ops.engine
        r = self.rollout
        phase = phase_of(engine, r)
        need = phase.approval if phase else None
        approved = ", ".join(sorted({a.user for a in r.approvals})) or "nobody yet"
        with Vertical(classes="dialog -wide"):
            yield Static(
                plain(f"Approve {r.id}: phase {phase.name if phase else '?'}"), classes="dialog-title"
            )
            yield Static(
                plain(
                    f"started by {r.started_by} · approved so far: {approved} · needs "
                    f"{need.distinct_approvers if need else 1} {need.role.name.lower() if need else 'approver'}(s)"
                    f" · you are {engine.actor.user} ({engine.role})",
                    wrap=True,
                ),
                classes="dialog-hint",
            )
            table = FittedTable(EVIDENCE, "reason", id="evidence", cursor_type="none", show_cursor=False)
            units = units_of(engine, r)
            for v in r.verdicts:
                table.set_row(v.gate, verdict_row(v, units.get(v.gate, "")))
            yield table
            yield Input(placeholder="reason for approving (required)", id="reason")
            yield Checkbox("admin override: approve over failing gates", id="override")
            yield Static("Enter approves · Esc cancels", classes="dialog-keys")
            yield Static(id="error", classes="dialog-error")

    def submit(self, reason: str) -> None:
        override = self.query_one("#override", Checkbox).value
        engine = self.ops.engine
        self.call_engine(
            engine.approve,
            self.rollout.id,
            reason,
            override=override,
            action=f"Approve {self.rollout.id}",
            done=self._approved,
        )

    def _approved(self, r: Rollout) -> None:
        self.app.notify(f"approved: {r.id} is {r.state}", markup=False)
        self.dismiss(True)
