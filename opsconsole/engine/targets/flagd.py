"""The flagd target: a flag-definition file in flagd's schema, which OpenFeature's flagd provider reads
in FILE mode (and flagd itself can serve), so any OpenFeature SDK sees the console's flags.

The contract: for every flag and every user, the provider's answer equals `flags.flagd_evaluate(state,
defn, ctx).value`. The mapping that keeps it:

- boolean and percentage flags have the variants {"on": true, "off": false}; a percentage of 1..99 is
  flagd's `fractional` shorthand [["on", p], ["off", 100 - p]] (bucketed over [flagKey, targetingKey],
  which is why a user lands differently than with the console's Unleash-style bucketing);
- variant flags have one string variant per name; off, everyone gets the first (the control); on, the
  variants are a `fractional` split by weight, in definition order;
- targeting lists (users as `targetingKey`, `tenant`, `region` context attributes) become an `if` in
  front of the rest, but only for flags the stored value or the default decided: an environment
  variable, the kill switch and an off parent apply to everyone;
- without a targetingKey `fractional` gives nothing, so flagd serves `defaultVariant`: "off" for a
  percentage, the first variant for a variant flag — the console's answer for a user it cannot place.
  (flagd-core 2.0 also logs an error for each such evaluation; and it treats a targetingKey of "" as
  none, where flagd_evaluate buckets "" like any other user id: the one known difference.)

Entries carry only the keys flagd-core accepts (an unknown key makes the Python provider reject the
whole file), and the file is ASCII so a consumer that opens it in any locale reads the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..flags import PERCENTAGE, VARIANT, FlagState, off_value, on_value
from ..fsutil import write_atomic
from ..model import FlagDef, Targeting
from ..units import iso_utc

SCHEMA = "https://flagd.dev/schema/v0/flags.json"
ON = "on"
OFF = "off"
USER_ATTRIBUTE = "targetingKey"
TENANT_ATTRIBUTE = "tenant"
REGION_ATTRIBUTE = "region"
"""The evaluation-context attributes targeting lists are matched against."""

_FORCING = frozenset({"env", "kill_switch", "parent"})
_FLAG_KEYS = frozenset({"state", "variants", "defaultVariant", "targeting", "metadata", "source", "selector"})
"""The keys flagd-core's Flag accepts; anything else fails the whole file."""
_ENCODER = json.JSONEncoder(ensure_ascii=True)
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _make_encode() -> Callable[[Any], str]:
    # One reusable C encoder: JSONEncoder.encode builds a new one per call, which at 10,000 calls
    # costs as much as the encoding itself. Without the C accelerator the plain encoder does the job.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    c_encode = make(None, _ENCODER.default, _quote, None, ": ", ", ", False, False, True)
    return lambda obj: "".join(c_encode(obj, 0))


_encode = _make_encode()


def render(
    environment: str,
    states: Mapping[str, FlagState],
    defs: Mapping[str, FlagDef],
    *,
    emergency: bool,
    at: float,
) -> dict[str, Any]:
    """The whole flagd document for one environment from resolved flag states.

    Flags whose entries come out equal share one entry object (all but those with targeting lists
    fall into a few hundred kinds), so that rendering and encoding 10,000 flags takes milliseconds:
    treat the document as read-only, or copy an entry before changing it."""
    get = defs.get
    shared: dict[tuple[Any, ...], dict[str, Any]] = {}
    flags: dict[str, dict[str, Any]] = {}
    for name in sorted(states):
        state = states[name]
        defn = get(name)
        if not shares_entry(state, defn):
            flags[name] = entry(state, defn)  # its targeting lists make it one of a kind
            continue
        key = (state.type, state.value, state.decided_by, state.detail, defn.variants if defn else ())
        found = shared.get(key)
        if found is None:
            found = shared[key] = entry(state, defn)
        flags[name] = found
    return {"$schema": SCHEMA, "metadata": _metadata(environment, emergency, at), "flags": flags}


def entry(state: FlagState, defn: FlagDef | None) -> dict[str, Any]:
    """One flag's flagd definition (see the module docstring for the mapping)."""
    decided = state.decided_by
    meta: dict[str, Any] = {"decidedBy": decided}
    if state.detail:
        meta["detail"] = state.detail
    cond = None
    if defn is not None and decided not in _FORCING and defn.targeting:
        cond = condition(defn.targeting)
    if state.type == VARIANT and defn is not None and defn.variants:
        first = defn.variants[0][0]
        split = {"fractional": [[name, weight] for name, weight in defn.variants]}
        if state.value:
            targeting: Any = split
        elif cond is not None:
            targeting = {"if": [cond, split, first]}
        else:
            targeting = None
        return _flag({name: name for name, _ in defn.variants}, first, targeting, meta)
    if state.type == PERCENTAGE:
        pct = int(state.value)
        meta["percentage"] = pct
        default = ON if pct >= 100 else OFF
        rest: Any = {"fractional": [[ON, pct], [OFF, 100 - pct]]} if 0 < pct < 100 else default
    else:
        default = ON if state.value else OFF
        rest = default
    if cond is not None and default == OFF:
        return _flag({ON: True, OFF: False}, default, {"if": [cond, ON, rest]}, meta)
    return _flag({ON: True, OFF: False}, default, rest if isinstance(rest, dict) else None, meta)


def condition(t: Targeting) -> dict[str, Any] | None:
    """JsonLogic that is true when the context is in the targeting lists, or None for empty lists."""
    tests = [
        {"in": [{"var": attribute}, sorted(values)]}
        for attribute, values in (
            (USER_ATTRIBUTE, t.users),
            (TENANT_ATTRIBUTE, t.tenants),
            (REGION_ATTRIBUTE, t.regions),
        )
        if values
    ]
    if not tests:
        return None
    return tests[0] if len(tests) == 1 else {"or": tests}


def _flag(variants: dict[str, Any], default: str, targeting: Any, meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"state": "ENABLED", "variants": variants, "defaultVariant": default}
    if targeting is not None:
        out["targeting"] = targeting
    out["metadata"] = meta
    return out


def _metadata(environment: str | None, emergency: bool, at: float) -> dict[str, Any]:
    meta: dict[str, Any] = {"generatedBy": "opsconsole", "generatedAt": iso_utc(at)}
    if environment is not None:
        meta["environment"] = environment
    meta["emergencyShutdown"] = emergency
    return meta


def encode_entry(flag: Mapping[str, Any]) -> str:
    """One flag's entry as it appears in the file."""
    return _encode(flag)


def row(name: str, text: str) -> str:
    """One flag's line inside "flags" (without the separating comma), its entry already encoded."""
    return f"    {_quote(name)}: {text}"


def shares_entry(state: FlagState, defn: FlagDef | None) -> bool:
    """Whether the flag's entry depends only on its state's value and its variants (see render):
    false for a flag whose targeting lists apply."""
    t = defn.targeting if defn is not None else None
    # Targeting's own __bool__, spelt out: a method call per flag is measurable here.
    return not (t is not None and (t.users or t.tenants or t.regions) and state.decided_by not in _FORCING)


def encode(document: Mapping[str, Any], rows: Sequence[str] | None = None) -> bytes:
    """JSON with `$schema` first and `flags` last, one flag per line: diffable and greppable. An entry
    object shared by several flags (see render) is encoded once. `rows`: the flags' lines already
    encoded (row(), sorted by name), used in place of the document's "flags"."""
    keys = sorted(document, key=lambda k: (k != "$schema", k == "flags", k))
    lines = ["{"]
    for i, key in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        value = document[key]
        if key == "flags" and rows:
            lines.append(f"  {_quote(key)}: {{")
            lines.append(",\n".join(rows))
            lines.append(f"  }}{comma}")
        elif key == "flags" and isinstance(value, Mapping) and value:
            lines.append(f"  {_quote(key)}: {{")
            done: dict[int, str] = {}  # by id: every entry stays alive in `document` meanwhile
            rows = []
            for name, flag in value.items():
                text = done.get(id(flag))
                if text is None:
                    text = done[id(flag)] = _encode(flag)
                rows.append(f"    {_quote(name)}: {text}")
            lines.append(",\n".join(rows))
            lines.append(f"  }}{comma}")
        else:
            lines.append(f"  {_quote(key)}: {_encode(value)}{comma}")
    lines.append("}\n")
    return "\n".join(lines).encode("ascii")


def write(path: Path, document: Mapping[str, Any]) -> None:
    write_atomic(Path(path), encode(document))


# ------------------------------------------------------------------------------------------ kill switch


def kill_states(
    flags_off: Iterable[str],
    flags_on: Iterable[str],
    zero: Iterable[str],
    defs: Mapping[str, FlagDef],
    environment: str | None = None,
) -> dict[str, FlagState]:
    """The states the kill switch forces, from configuration alone (shared with the .env target):
    flags_off and `zero` (the canaries of aborted rollouts) off, flags_on on (off wins), and every
    descendant of an off flag off, as resolve() would decide it. Flags scoped to other environments
    are left out. Environment-variable overrides are not known here; the export that follows the
    store's update applies them."""

    def here(name: str) -> bool:
        defn = defs.get(name)
        return defn is None or defn.in_environment(environment)

    def kind(name: str) -> str:
        defn = defs.get(name)
        return defn.type if defn is not None else "boolean"

    out: dict[str, FlagState] = {}
    for name in flags_on:
        if here(name):
            out[name] = FlagState(name, kind(name), on_value(kind(name)), "kill_switch")
    off = [name for name in (*flags_off, *zero) if here(name)]
    for name in off:
        out[name] = FlagState(name, kind(name), off_value(kind(name)), "kill_switch")
    if off and defs:
        children: dict[str, list[str]] = {}
        for name, defn in defs.items():
            if defn.depends_on is not None and defn.in_environment(environment):
                children.setdefault(defn.depends_on, []).append(name)
        blocked = set(off)
        stack = [(name, name) for name in off]
        while stack:
            parent, root = stack.pop()
            for child in children.get(parent, ()):
                if child not in blocked:
                    blocked.add(child)
                    out[child] = FlagState(child, kind(child), off_value(kind(child)), "parent", root)
                    stack.append((child, root))
    return out


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
    """The flagd file at `path` with the kill switch's safe state in it, every other flag kept.

    Without the store: the states come from kill_states(). A missing or unreadable file is replaced
    by a document holding only the safe state (a flag the provider does not know gives the caller's
    default). Entries flagd would reject are dropped, because one of them makes the provider refuse
    the whole file and keep serving the state from before the kill. Idempotent.
    """
    path = Path(path)
    defs = defs or {}
    document = _read_usable(path)
    flags: dict[str, Any] = document["flags"]
    for name, state in kill_states(flags_off, flags_on, zero, defs, environment).items():
        flags[name] = entry(state, defs.get(name))
    document["flags"] = dict(sorted(flags.items()))
    meta = document.get("metadata")
    environment = environment if environment is not None else _text(meta, "environment")
    document["metadata"] = _metadata(environment, True, at)
    return encode(document)


def _text(meta: Any, key: str) -> str | None:
    value = meta.get(key) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def _read_usable(path: Path) -> dict[str, Any]:
    """The existing document with only what flagd accepts, or a new empty one."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):  # missing, unreadable, not JSON, not UTF-8
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
        return {"$schema": SCHEMA, "flags": {}}
    document["flags"] = {k: v for k, v in document["flags"].items() if k and _usable(v)}
    if not isinstance(document.get("$evaluators"), (dict, type(None))):
        del document["$evaluators"]
    document.setdefault("$schema", SCHEMA)
    return document


def _usable(flag: Any) -> bool:
    """Whether flagd-core would load this entry (its Flag checks, less the targeting's content)."""
    if not isinstance(flag, dict) or not _FLAG_KEYS.issuperset(flag):
        return False
    if flag.get("state") not in ("ENABLED", "DISABLED"):
        return False
    variants = flag.get("variants")
    if not isinstance(variants, dict) or not variants:
        return False
    default = flag.get("defaultVariant")
    if default is not None and not isinstance(default, (str, bool)):
        return False
    if not isinstance(flag.get("targeting", {}), dict):
        return False
    meta = flag.get("metadata", {})
    return isinstance(meta, dict) and all(
        isinstance(k, str) and k and isinstance(v, (str, int, float, bool)) for k, v in meta.items()
    )
