"""One rollout in full: its phases and steps, every gate verdict, and the timeline of events with
actors and reasons (the same record `opsconsole report` prints)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from ..calls import call
from ..format import plain
from ..handle import ConsoleAccess


class RolloutDetailScreen(ConsoleAccess, ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Back", id="back")]

    def __init__(self, rollout_id: str) -> None:
        super().__init__()
        self.rollout_id = rollout_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -full"):
            yield Static(plain(f"Rollout {self.rollout_id}"), id="detail-title", classes="dialog-title")
            yield Static(id="detail-phases")
            table: DataTable[Any] = DataTable(id="timeline", cursor_type="row", zebra_stripes=True)
            for label in ("#", "Time", "Who", "Event", "Detail"):
                table.add_column(label)
            yield table
            yield Static("Esc back", classes="dialog-keys")

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        engine = self.ops.engine
        call(
            self,
            lambda: engine.report(self.rollout_id).to_dict(),
            action=f"Reading {self.rollout_id}",
            done=self.show,
            failed=lambda message: self.query_one("#detail-phases", Static).update(plain(message, wrap=True)),
            group="detail",
        )

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
        self.query_one("#detail-phases", Static).update(lines)
        table = self.query_one("#timeline", DataTable)
        table.clear()
        for t in doc["timeline"]:
            detail = t.get("reason") or t.get("item") or ""
            if t["action"] == "rollout.transition":
                detail = f"{t.get('from')} → {t.get('to')} {t.get('phase')} {t.get('percent')}%: {detail}"
            table.add_row(
                str(t["seq"]),
                t["at"][11:19],
                plain(f"{t['actor']}@{t['origin']}"),
                plain(t["action"]),
                plain(detail),
            )
