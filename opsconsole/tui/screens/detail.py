"""One rollout in full: its phases and steps, every gate verdict, and the timeline of events with
actors and reasons (the same record `opsconsole report` prints)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

import opsconsole.engine as facade

from ..calls import call
from ..format import plain
from ..handle import ConsoleAccess
from ..widgets.fitted_table import FitColumn, FittedTable

TIMELINE = (
    FitColumn("seq", "#", 1, 5),
    FitColumn("time", "Time", 8, 8),
    FitColumn("who", "Who", 6, 20),
    FitColumn("event", "Event", 8, 24),
    FitColumn("detail", "Detail", 16, 0),
)
"""A long detail ends in an ellipsis here; `opsconsole report` prints it whole."""


class RolloutDetailScreen(ConsoleAccess, ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Back", id="back"),
        # A dialog's keys leave out the app's: help (kill switch first) must open here too.
        Binding("question_mark", "app.help", "Help", id="detail-help"),
    ]

    def __init__(self, rollout_id: str) -> None:
        super().__init__()
        self.rollout_id = rollout_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -full"):
            yield Static(plain(f"Rollout {self.rollout_id}"), id="detail-title", classes="dialog-title")
            yield Static(id="detail-phases")
            yield FittedTable(TIMELINE, "detail", id="timeline", cursor_type="row", zebra_stripes=True)
            yield Static("Esc back · ? keys", classes="dialog-keys")

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        engine = self.ops.engine
        call(
            self,
            lambda: self.read(engine),
            action=f"Reading {self.rollout_id}",
            done=self.show,
            failed=lambda message: self.query_one("#detail-phases", Static).update(plain(message, wrap=True)),
            group="detail",
        )

    def read(self, engine: Any) -> dict[str, Any]:
        """The rollout's report and the Docker deploys its phases made (blocking: off the loop)."""
        doc: dict[str, Any] = engine.report(self.rollout_id).to_dict()
        doc["deploys"] = [facade.deploy_lines(d) for d in facade.rollout_deploys(engine, self.rollout_id)]
        return doc

    def show(self, doc: dict[str, Any]) -> None:
        r = doc["rollout"]
        lines = Text()
        lines.append_text(
            plain(f"{r['plan']} · {r['state']} · started by {r['started_by']} at {r['created_at']}")
        )
        for p in r["phases"]:
            steps = " → ".join(f"{s['percent']}%" for s in p["steps"]) or "-"
            lines.append("\n")
            lines.append_text(plain(f"  {p['name']} [{p['environment']}] {p['state']}: {steps}"))
        if doc.get("reaction_s") is not None:
            lines.append(f"\n  rollback reaction: {doc['reaction_s']:.2f} s")
        for deploy in doc.get("deploys") or []:  # each deploy's steps with their times (UTC)
            for line in deploy:
                lines.append("\n")
                lines.append_text(plain(f"  {line}"))
        self.query_one("#detail-phases", Static).update(lines)
        table = self.query_one("#timeline", FittedTable)
        table.clear()
        for t in doc["timeline"]:
            detail = t.get("reason") or t.get("item") or ""
            if t["action"] == "rollout.transition":
                detail = f"{t.get('from')} → {t.get('to')} {t.get('phase')} {t.get('percent')}%: {detail}"
            table.set_row(
                str(t["seq"]),
                {
                    "seq": str(t["seq"]),
                    "time": t["at"][11:19],
                    "who": plain(f"{t['actor']}@{t['origin']}"),
                    "event": plain(t["action"]),
                    "detail": plain(detail),
                },
            )
        table.fit()
