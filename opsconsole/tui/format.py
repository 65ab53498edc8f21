"""How engine values and remote text read on screen, shared by the panes and the dialogs.

Textual-free (Rich text only): no widgets, no store reads, so a pane and a dialog that show the same
thing import it from here and screens never import a pane.

Remote text: names from config, alarm reasons, metric labels and anything an agent sends are shown as
typed: `[bold]` stays the six characters it is, and an escape sequence shows as a visible `\\x1b[...`
rather than reaching the terminal. Everything a pane shows that did not come from our own code goes
through `safe()` (or `plain()` for a ready Text); toasts go through the app's `notify`, which does
the same. The escaping itself is `opsconsole.textsafe.visible`, shared with the command line.

Engine helpers are looked up on the facade when called, not imported: the app imports this module
for its first frame, which must not wait for the engine's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

import opsconsole.engine as facade
from opsconsole.textsafe import visible

if TYPE_CHECKING:
    from opsconsole.engine import Engine, FlagDef, FlagState, GateVerdict, Rollout

STATUS_STYLE = {"pass": "green", "fail": "bold red", "pending": "yellow", "unknown": "magenta"}
"""Gate verdict status -> style, in the rollouts pane and the approval dialog."""

ROLLOUT_STATE_STYLE = {
    "completed": "green",
    "progressing": "bold",
    "awaiting_approval": "bold yellow",
    "paused": "yellow",
    "rolling_back": "bold red",
    "rolled_back": "red",
    "aborted": "red",
    "pending": "dim",
}
"""Rollout state -> style, in the rollouts pane."""


# ------------------------------------------------------------------------------------ remote text


def safe(value: object) -> str:
    """Printable text on one line: controls and bidi overrides become visible escapes."""
    return visible(value)


def plain(value: object, style: str = "", wrap: bool = False) -> Text:
    """A Text that Rich will not parse as markup (a plain `str` given to a Static or an Option would
    be). Cells stay on one line; dialog text may wrap."""
    return Text(safe(value), style=style, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis")


# ------------------------------------------------------------------------------------ flags


def format_flag_value(value: object, flag_type: str) -> str:
    """The engine's words for a flag value (true / false, N%, on / off, unset)."""
    return facade.flag_value_text(value, flag_type)


def variants_text(defn: FlagDef) -> str:
    """ "control 50 · short 25 · long 25": a variant flag's variants and weights, in file order."""
    return " · ".join(f"{name} {weight}" for name, weight in defn.variants)


def decided_why(state: FlagState) -> str:
    """Which rule decided a flag's value, in a sentence, for the detail line and the dialogs."""
    by = state.decided_by
    if by == "parent":
        return f"off because its parent {state.detail} is off"
    if by == "kill_switch":
        return "forced by the engaged kill switch"
    if by == "env":
        return f"set by the environment variable {state.detail}"
    return f"the {by} value"


# ------------------------------------------------------------------------------------ rollouts


def units_of(engine: Engine, r: Rollout) -> dict[str, str]:
    """How each gate of the rollout's current phase prints its value."""
    phase = facade.phase_of(engine, r)
    if phase is None:
        return {}
    return {
        spec.name: spec.unit or ("s" if spec.kind == "soak" else "") for spec in (*phase.gates, *phase.guards)
    }


def verdict_cells(v: GateVerdict, unit: str) -> tuple[Text, ...]:
    """A gate verdict as a table row: gate, status, value, threshold, reason."""
    status = str(v.status)
    return (
        plain(v.gate),
        Text(status, style=STATUS_STYLE.get(status, "")),
        plain(facade.format_value(v.value, unit) if v.value is not None else "n/a"),
        plain(v.threshold),
        plain(v.reason),
    )


VERDICT_KEYS = ("gate", "status", "value", "limit", "reason")


def verdict_row(v: GateVerdict, unit: str) -> dict[str, Text]:
    """verdict_cells() keyed by column, for the fitted tables of the Rollouts pane and approval."""
    return dict(zip(VERDICT_KEYS, verdict_cells(v, unit), strict=True))


# ------------------------------------------------------------------------------------ times


def utc_time(ts: float) -> str:
    """ "2026-03-01 14:00:00": a stored time in UTC, to the second, for tables."""
    return facade.iso_utc(ts, "seconds")[:19].replace("T", " ")


def ago(seconds: float) -> str:
    """How long ago, to the second only within the first minute: a cell that changes every second
    costs a repaint every second, for every alarm on screen."""
    s = max(0.0, seconds)
    if s < 60:
        text = facade.format_duration(s)
    elif s < 3600:
        text = f"{int(s // 60)}m"
    else:
        text = facade.format_duration(s - s % 60)
    return f"{text} ago"
