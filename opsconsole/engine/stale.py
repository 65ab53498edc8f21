"""Stale flags: flags that have outlived what their kind is expected to live. Pure.

Every flag is debt: a release flag left in place after the release is code nobody dares remove.
Lifetimes per kind are Unleash's (model.FLAG_LIFETIMES); kill switches and permission flags are meant
to stay and are never stale. A flag's age counts from its `created` date in config, else from the
first change the store recorded for it; with neither, its age is unknown and it is not called stale,
because a guess would teach people to ignore the marker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .model import FLAG_LIFETIMES, FlagDef
from .units import format_duration

CREATED = "created"
FIRST_CHANGE = "first change"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class FlagAge:
    """How old a flag is and whether that is too old for its kind."""

    name: str
    kind: str
    lifetime: float | None
    """Expected lifetime in seconds; None: never stale."""
    since: float | None
    """When the flag came to be (epoch seconds), None when unknown."""
    source: str
    """Where `since` comes from: "created" (config), "first change" (store history) or "unknown"."""
    age: float | None
    stale: bool
    detail: str
    """One line for people: "52d old, release flags live 40d", "age unknown"."""


def flag_age(defn: FlagDef, first_change: float | None, now: float) -> FlagAge:
    lifetime = FLAG_LIFETIMES.get(defn.kind)
    if defn.created is not None:
        since, source = defn.created, CREATED
    elif first_change is not None:
        since, source = first_change, FIRST_CHANGE
    else:
        since, source = None, UNKNOWN
    age = None if since is None else max(0.0, now - since)
    if defn.kind not in FLAG_LIFETIMES:
        return FlagAge(defn.name, defn.kind, None, since, source, age, False, f"unknown kind {defn.kind!r}")
    if lifetime is None:
        detail = f"{defn.kind} flags never go stale"
        return FlagAge(defn.name, defn.kind, None, since, source, age, False, detail)
    if age is None:
        return FlagAge(defn.name, defn.kind, lifetime, None, source, None, False, "age unknown")
    stale = age > lifetime
    detail = f"{format_duration(age)} old, {defn.kind} flags live {format_duration(lifetime)}"
    if source == FIRST_CHANGE:
        detail += " (age from its first recorded change)"
    return FlagAge(defn.name, defn.kind, lifetime, since, source, age, stale, detail)


def flag_ages(defs: Iterable[FlagDef], first_changes: Mapping[str, float], now: float) -> dict[str, FlagAge]:
    return {d.name: flag_age(d, first_changes.get(d.name), now) for d in defs}


def stale_only(ages: Iterable[FlagAge]) -> list[FlagAge]:
    """The stale ones, most overdue first."""
    out = [a for a in ages if a.stale]
    return sorted(out, key=lambda a: (-((a.age or 0.0) - (a.lifetime or 0.0)), a.name))
