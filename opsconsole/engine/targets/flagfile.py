"""The flag-file target: a JSON file in the seed's schema, `{"flags": {name: {"enabled": …, …}}}`.

Services read this file to decide their flags, so it is always replaced atomically (fsutil) and the
kill switch can patch it from configuration alone, without the store: `kill_patch` must land the
safe state even when the database is unreachable or the existing file is garbage.

The file is written one flag per line, keys sorted: as readable and diffable as indented JSON, `grep`
shows a flag's whole entry, and it encodes about twice as fast, which the kill switch's path notices.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..flags import PERCENTAGE, FlagState, in_rollout
from ..fsutil import write_atomic
from ..model import FlagDef
from ..units import iso_utc

VERSION = 1
ALL_AT_ONCE = "all_at_once"
PERCENTAGE_STRATEGY = "percentage"

_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


class FlagFileError(Exception):
    """A flag file that is missing, unreadable or not in the expected schema."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)
        self.message = message


def render(
    environment: str,
    states: Mapping[str, FlagState],
    defs: Mapping[str, FlagDef],
    *,
    emergency: bool,
    at: float,
) -> dict[str, Any]:
    """The whole document for one environment from resolved flag states."""
    flags = {name: entry(states[name], defs.get(name)) for name in sorted(states)}
    return {
        "version": VERSION,
        "environment": environment,
        "generated_at": iso_utc(at),
        "emergency_shutdown": emergency,
        "flags": flags,
    }


def entry(state: FlagState, defn: FlagDef | None) -> dict[str, Any]:
    """One flag's object in the file."""
    if state.type == PERCENTAGE:
        percentage = int(state.value)
        strategy = PERCENTAGE_STRATEGY
    else:
        percentage = 100 if state.value else 0
        strategy = ALL_AT_ONCE
    out: dict[str, Any] = {
        "enabled": percentage > 0,
        "type": state.type,
        "rollout_strategy": strategy,
        "rollout_percentage": percentage,
        "decided_by": state.decided_by,
        "description": defn.description if defn else "",
        "risk_level": defn.risk if defn else "",
        "depends_on": defn.depends_on if defn else None,
    }
    if state.detail:
        out["detail"] = state.detail  # which variable or parent decided: the file says why
    return out


def _make_encode() -> Callable[[Any], str]:
    # One reusable C encoder: JSONEncoder.encode builds a new one per call, which at 10,000 calls
    # costs as much as the encoding itself. Without the C accelerator the plain encoder does the job.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    quote = json.encoder.c_encode_basestring  # type: ignore[attr-defined]
    c_encode = make(None, _ENCODER.default, quote, None, ": ", ", ", True, False, True)
    return lambda obj: "".join(c_encode(obj, 0))


_encode = _make_encode()


def row(name: str, entry: Mapping[str, Any]) -> str:
    """One flag's line inside "flags" (without the separating comma)."""
    return f"    {_encode(name)}: {_encode(entry)}"


def encode(document: Mapping[str, Any], rows: Sequence[str] | None = None) -> bytes:
    """Key-sorted JSON, one flag per line, trailing newline. `rows`: the flags' lines already encoded
    (row(), sorted by name), used in place of the document's "flags"."""
    lines = ["{"]
    keys = sorted(document)
    for i, key in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        value = document[key]
        if key == "flags" and rows:
            lines.append(f"  {_encode(key)}: {{")
            lines.append(",\n".join(rows))
            lines.append(f"  }}{comma}")
        elif key == "flags" and isinstance(value, Mapping) and value:
            lines.append(f"  {_encode(key)}: {{")
            lines.append(",\n".join(row(n, value[n]) for n in sorted(value)))
            lines.append(f"  }}{comma}")
        else:
            lines.append(f"  {_encode(key)}: {_encode(value)}{comma}")
    lines.append("}\n")
    return "\n".join(lines).encode("utf-8")


def write(path: Path, document: Mapping[str, Any]) -> None:
    write_atomic(Path(path), encode(document))


def read(path: Path) -> dict[str, Any]:
    """The document at `path`, or FlagFileError saying what is wrong with it."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FlagFileError(path, "no such file") from None
    except OSError as exc:
        raise FlagFileError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        document: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FlagFileError(
            path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # bytes that are not UTF-8
        raise FlagFileError(path, f"not valid JSON: {exc}") from None
    problem = schema_problem(document)
    if problem:
        raise FlagFileError(path, problem)
    return document


def schema_problem(document: Any) -> str | None:
    """What makes `document` not a flag file, or None. Unknown keys are allowed: the seed's own
    files carry more than we write."""
    if not isinstance(document, dict):
        return f"expected a JSON object at the top, got {_kind(document)}"
    if "flags" not in document:
        return 'no "flags" object'
    flags = document["flags"]
    if not isinstance(flags, dict):
        return f'"flags" must be an object, got {_kind(flags)}'
    if not isinstance(document.get("emergency_shutdown", False), bool):
        return '"emergency_shutdown" must be true or false'
    for name, entry in flags.items():
        where = f"flags.{name}"
        if not isinstance(entry, dict):
            return f"{where} must be an object, got {_kind(entry)}"
        if not isinstance(entry.get("enabled"), bool):
            return f"{where}.enabled must be true or false, got {json.dumps(entry.get('enabled'))}"
        percentage = entry.get("rollout_percentage", 100)
        if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
            return f"{where}.rollout_percentage must be an integer 0..100, got {json.dumps(percentage)}"
        if not isinstance(entry.get("rollout_strategy", ALL_AT_ONCE), str):
            return f"{where}.rollout_strategy must be a string"
    return None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def kill_patch(
    path: Path,
    flags_off: Iterable[str],
    flags_on: Iterable[str],
    zero: Iterable[str],
    at: float,
    *,
    defs: Mapping[str, FlagDef] | None = None,
    environment: str | None = None,
) -> bytes:
    """The file at `path` with the kill switch's safe state in it, every other flag kept as it is.

    `zero` are the canary flags of aborted rollouts: sent to 0% and disabled. A flag listed both on
    and off ends up off. With `defs`, every descendant of an off flag is off too (decided by its
    parent), as the export from the store would say. A missing or unreadable file becomes a
    document holding only the safe state: consumers treat absent flags as off, and the safe state
    must land regardless. Idempotent: the same arguments give the same bytes.
    """
    path = Path(path)
    try:
        document = read(path)
    except FlagFileError:
        document = {"version": VERSION, "flags": {}}
    flags: dict[str, Any] = document["flags"]
    flags_off, zero = list(flags_off), list(zero)
    for name in flags_on:
        _set(flags, name, True, ALL_AT_ONCE)
    for name in flags_off:
        _set(flags, name, False, ALL_AT_ONCE)
    for name in zero:
        _set(flags, name, False, PERCENTAGE_STRATEGY)
    if defs:
        from .flagd import kill_states

        for name, state in kill_states(flags_off, (), zero, defs, environment).items():
            if state.decided_by == "parent":
                strategy = PERCENTAGE_STRATEGY if state.type == PERCENTAGE else ALL_AT_ONCE
                _set(flags, name, False, strategy, decided_by="parent")
    document["emergency_shutdown"] = True
    document["generated_at"] = iso_utc(at)
    return encode(document)


def _set(
    flags: dict[str, Any], name: str, on: bool, strategy_if_new: str, decided_by: str = "kill_switch"
) -> None:
    entry = flags.get(name)
    if entry is None:
        entry = flags[name] = {"rollout_strategy": strategy_if_new}
    entry["enabled"] = on
    entry["rollout_percentage"] = 100 if on else 0
    entry["decided_by"] = decided_by
    entry.pop("detail", None)  # it explained the previous decider


def consumer_is_on(document: Mapping[str, Any], flag: str, user_id: str) -> bool:
    """How a service reading the file decides a flag for a user: a missing or malformed flag is
    off; an enabled flag is on for everyone unless its strategy buckets users by percentage."""
    flags = document.get("flags") if isinstance(document, Mapping) else None
    entry = flags.get(flag) if isinstance(flags, Mapping) else None
    if not isinstance(entry, Mapping) or entry.get("enabled") is not True:
        return False
    if entry.get("rollout_strategy", ALL_AT_ONCE) == ALL_AT_ONCE:
        return True
    percentage = entry.get("rollout_percentage", 100)
    if isinstance(percentage, bool) or not isinstance(percentage, int):
        return False
    return in_rollout(percentage, flag, user_id)
