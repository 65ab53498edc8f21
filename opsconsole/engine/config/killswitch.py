"""The `kill_switch:` section: its key, and the flags it turns off and on.

The key must not be one that edits text: the kill switch has to work while someone is typing in an
input field.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..model import FlagDef, KillSwitchSpec
from .fields import Fields
from .issues import suggest
from .yamlsrc import YamlSource

# Keys Textual's Input (and the terminal) use for editing: the kill switch must work while typing.
_EDITING_KEYS = frozenset(
    {f"ctrl+{c}" for c in "abcdefhijkmuvwxyz"}
    | {"enter", "tab", "backspace", "delete", "left", "right", "up", "down", "home", "end", "escape", "space"}
)


def read_kill_switch(
    src: YamlSource, main: Fields, flags: Mapping[str, FlagDef]
) -> tuple[KillSwitchSpec, str]:
    """The kill switch's spec and its key."""
    k = main.mapping("kill_switch", ("key", "flags_off", "flags_on", "abort_rollouts", "pause_improvements"))
    if k is None:
        # Without a kill_switch section the seed's kill flag is still raised, if it exists.
        return KillSwitchSpec(
            flags_on=("emergency_shutdown",) if "emergency_shutdown" in flags else ()
        ), "ctrl+backslash"
    key = k.text("key", "ctrl+backslash").strip().lower()
    if key in _EDITING_KEYS or len(key) == 1:
        k.issue(
            "key",
            f"'{key}' edits text in input fields; the kill switch must work while typing (e.g. ctrl+backslash)",
        )
    off = _flag_list(src, k, "flags_off", flags, [])
    on = _flag_list(
        src, k, "flags_on", flags, ["emergency_shutdown"] if "emergency_shutdown" in flags else []
    )
    for name in set(off) & set(on):
        k.issue("flags_on", f"flag '{name}' is in both flags_off and flags_on")
    for name in on:
        if name in flags and flags[name].type != "boolean":
            k.issue("flags_on", f"flag '{name}' is a {flags[name].type} flag; flags_on takes boolean flags")
    spec = KillSwitchSpec(
        flags_off=tuple(off),
        flags_on=tuple(on),
        abort_rollouts=k.boolean("abort_rollouts", True),
        pause_improvements=k.boolean("pause_improvements", True),
    )
    return spec, key


def _flag_list(
    src: YamlSource, f: Fields, name: str, flags: Mapping[str, FlagDef], default: list[str]
) -> list[str]:
    if name not in f:
        return default
    items = f.sequence(name)
    out: list[str] = []
    for key, n in items:
        flag = src.text(n, key)
        if flag is None:
            continue
        if flag not in flags:
            src.issue(n, key, f"unknown flag '{flag}'{suggest(flag, flags)}")
        out.append(flag)
    return out
