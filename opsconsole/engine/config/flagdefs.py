"""Flag definitions: the main file's `flags:` section, inline or in a file of its own (flags.yaml).

Flag names double as environment variable names, so they are restricted to letters, digits and '_'.
A `depends_on` must name a defined flag, and dependency cycles are reported once each, as the path
that closes them. Variant flags list their variants with weights that sum to 100. `default` is one
value, or one per environment (`default: {development: true, production: false}`); `environments`
scopes a flag to some environments (names another configuration uses are allowed; near misses of
this one's are errors).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from datetime import UTC, date, datetime
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode

from ..flags import dependency_cycles
from ..model import FLAG_LIFETIMES, FlagDef, FlagValue, Targeting
from .fields import Fields
from .issues import suggest
from .values import resolve_path
from .yamlsrc import YamlSource

_FLAG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLAG_KEYS = (
    "type",
    "default",
    "description",
    "risk",
    "owner",
    "depends_on",
    "variants",
    "targeting",
    "environments",
    "kind",
    "created",
)
_TYPES = ("boolean", "percentage", "variant")


def read_flags(
    src: YamlSource, main: Fields, base: Path, environments: Collection[str] = ()
) -> dict[str, FlagDef]:
    """The flags defined in the main file, or in the file its `flags:` names (relative to `base`)."""
    node = main.get("flags")
    if node is None:
        return {}
    if isinstance(node, ScalarNode):
        text = src.text(node, main.path("flags"))
        if text is None:
            return {}
        fpath = resolve_path(base, text)
        fsrc, root = YamlSource.open(fpath, str(fpath), src.variables, src.issues)
        if root is None:
            return {}
        top = fsrc.mapping(root, "", ("flags",), required=("flags",))
        defs_node = top.get("flags") if top is not None else None
        return _flag_defs(fsrc, defs_node, "flags", environments) if defs_node is not None else {}
    return _flag_defs(src, node, main.path("flags"), environments)


def _flag_defs(src: YamlSource, node: Node, key: str, environments: Collection[str]) -> dict[str, FlagDef]:
    f = src.mapping(node, key)
    if f is None:
        return {}
    defs: dict[str, FlagDef] = {}
    parents: dict[str, Node] = {}
    for name, dnode in f:
        path = f.path(name)
        if not _FLAG_NAME.fullmatch(name):
            src.issue(
                f.keys[name],
                path,
                "flag names use letters, digits and '_' (the name is also an environment variable)",
            )
        d = src.mapping(dnode, path, _FLAG_KEYS)
        if d is None:
            continue
        ftype = d.choice("type", _TYPES, "boolean")
        default, env_defaults = _flag_defaults(src, d, ftype, environments)
        depends_on = d.text("depends_on")
        if depends_on is not None:
            parents[name] = d.get("depends_on")  # type: ignore[assignment]
        defs[name] = FlagDef(
            name=name,
            type=ftype,
            default=default,
            description=d.text("description", ""),
            risk=d.choice("risk", ("low", "medium", "high"), "low"),
            owner=d.text("owner", ""),
            depends_on=depends_on,
            where=src.where(dnode),
            variants=_variants(src, d, ftype),
            targeting=_targeting(d),
            environments=tuple(_environment_names(src, d, environments)),
            env_defaults=env_defaults,
            kind=d.choice("kind", tuple(FLAG_LIFETIMES), "release"),
            created=d.parsed("created", _created),
        )
    for name, pnode in parents.items():
        parent = defs[name].depends_on
        if parent not in defs:
            src.issue(
                pnode, f.path(name) + ".depends_on", f"unknown flag '{parent}'{suggest(str(parent), defs)}"
            )
    for cycle in dependency_cycles(defs):
        src.issue(
            parents[cycle[0]], f.path(cycle[0]) + ".depends_on", "dependency cycle: " + " -> ".join(cycle)
        )
    return defs


def _flag_defaults(
    src: YamlSource, d: Fields, ftype: str, environments: Collection[str]
) -> tuple[FlagValue, tuple[tuple[str, FlagValue], ...]]:
    """(default, per-environment defaults). `default: {staging: true, production: false}` gives
    each environment its own; environments not listed get the type's off value."""
    node = d.get("default")
    off: FlagValue = 0 if ftype == "percentage" else False
    if node is None:
        return off, ()
    if not isinstance(node, MappingNode):
        return _flag_value(src, node, d.path("default"), ftype), ()
    per_env = d.mapping("default")
    pairs: list[tuple[str, FlagValue]] = []
    for env, vnode in per_env or ():
        key = d.path("default") + "." + env
        if _misspelt(env, environments):
            src.issue(vnode, key, f"unknown environment '{env}'{suggest(env, environments)}")
            continue
        pairs.append((env, _flag_value(src, vnode, key, ftype)))
    return off, tuple(pairs)


def _flag_value(src: YamlSource, node: Node, key: str, ftype: str) -> FlagValue:
    if ftype != "percentage":
        return bool(src.boolean(node, key))
    ok, raw = src.scalar(node, key, "a percentage")
    if isinstance(raw, bool):
        return 100 if raw else 0
    return (src.integer(node, key, minimum=0, maximum=100) if ok else None) or 0


def _variants(src: YamlSource, d: Fields, ftype: str) -> tuple[tuple[str, int], ...]:
    """`variants: {control: 50, treatment: 50}`: weights 0..100 that sum to 100, in file order."""
    if ftype != "variant":
        if "variants" in d:
            d.issue("variants", f"only variant flags have variants (this flag's type is {ftype})")
        return ()
    v = d.mapping("variants")
    if v is None:
        d.missing(
            "variants", "a variant flag lists its variants with weights, e.g. {control: 50, treatment: 50}"
        )
        return ()
    out: list[tuple[str, int]] = []
    for name, wnode in v:
        weight = src.integer(wnode, v.path(name), minimum=0, maximum=100)
        if weight is not None:
            out.append((name, weight))
    total = sum(w for _, w in out)
    if len(list(v)) < 2:
        d.issue("variants", "a variant flag needs at least two variants")
    elif len(out) == len(list(v)) and total != 100:
        d.issue("variants", f"variant weights sum to {total}, not 100")
    return tuple(out)


def _targeting(d: Fields) -> Targeting:
    t = d.mapping("targeting", ("users", "tenants", "regions"))
    if t is None:
        return Targeting()
    return Targeting(
        users=frozenset(t.texts("users", [])),
        tenants=frozenset(t.texts("tenants", [])),
        regions=frozenset(t.texts("regions", [])),
    )


def _environment_names(src: YamlSource, d: Fields, environments: Collection[str]) -> list[str]:
    names: list[str] = []
    for key, node in d.sequence("environments", nonempty=True):
        name = src.text(node, key)
        if name is None:
            continue
        if _misspelt(name, environments):
            src.issue(node, key, f"unknown environment '{name}'{suggest(name, environments)}")
            continue
        names.append(name)
    return names


def _misspelt(env: str, environments: Collection[str]) -> bool:
    """A flag file is shared by configurations with different environments (the demo has no
    development), so a name this configuration lacks is fine, unless it is a near miss of one it has:
    `producton` is a typo that would silently leave production on the type's default."""
    if env in environments:
        return False
    return bool(difflib.get_close_matches(env, list(environments), n=1, cutoff=0.75))


def _created(text: str) -> float:
    """`created: 2026-10-01` (a date, UTC midnight) or an ISO date-time; epoch seconds."""
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a date like 2026-10-01 or an ISO date-time, got {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
