"""How engine values read on screen, shared by the panes and the dialogs (screens import no pane).

Pure formatting: no widgets, no store reads."""

from __future__ import annotations

from typing import Any

from opsconsole.engine import phase_of

STATUS_STYLE = {"pass": "green", "fail": "bold red", "pending": "yellow", "unknown": "magenta"}
"""Gate verdict status -> style, in the rollouts pane and the approval dialog."""


def format_flag_value(value: object, flag_type: str) -> str:
    """true / false for booleans, N% for percentages, on / off for variant flags (on: users get the
    variants by weight; off: everyone gets the first); `unset` for a missing history value."""
    if value is None:
        return "unset"
    if flag_type == "percentage":
        return f"{int(value)}%"  # type: ignore[call-overload]
    if flag_type == "variant":
        return "on" if value else "off"
    return "true" if value else "false"


def variants_text(defn: Any) -> str:
    """ "control 50 · short 25 · long 25": a variant flag's variants and weights, in file order."""
    return " · ".join(f"{name} {weight}" for name, weight in defn.variants)


def decided_why(state: Any) -> str:
    """Which rule decided a flag's value, in a sentence, for the detail line and the dialogs."""
    by = state.decided_by
    if by == "parent":
        return f"off because its parent {state.detail} is off"
    if by == "kill_switch":
        return "forced by the engaged kill switch"
    if by == "env":
        return f"set by the environment variable {state.detail}"
    return f"the {by} value"


def units_of(engine: Any, r: Any) -> dict[str, str]:
    """How each gate of the rollout's current phase prints its value."""
    phase = phase_of(engine, r)
    if phase is None:
        return {}
    return {
        spec.name: spec.unit or ("s" if spec.kind == "soak" else "") for spec in (*phase.gates, *phase.guards)
    }
