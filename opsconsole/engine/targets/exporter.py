"""One environment's three flag files as bytes, encoding again only the flags that changed.

Every flag change exports every flag of the environment; with 10,000 flags, building and encoding
each entry again was most of the export. An `Exporter` keeps, per environment, each flag's encoded
line in each file, keyed by what the line is made of (the resolved state, and the definition, which
is immutable and replaced when the configuration is), and the files' lines in file order while the
set of flags stays the same. The bytes are exactly those of the targets' own render() and encode().

Safe to share between threads: an environment's cache is replaced whole, never changed in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..flags import FlagState, env_var_name
from ..model import FlagDef
from . import dotenv, flagd, flagfile

_Key = tuple[str, Any, str, str, FlagDef | None]
"""What a flag's lines are made of: type, value, decided_by, detail and its definition."""


@dataclass(frozen=True)
class Files:
    """The encoded files of one export (None: that format was not asked for)."""

    seed: bytes
    flagd: bytes | None
    dotenv: bytes | None


@dataclass
class _Cache:
    names: tuple[str, ...] = ()
    """The states' flag names, in the order they came."""
    keys: dict[str, _Key] = field(default_factory=dict)
    seed: list[str] = field(default_factory=list)
    """Lines in file order (by flag name); flagd likewise; dotenv by variable."""
    flagd: list[str] | None = None
    dotenv: list[str] | None = None
    at_name: dict[str, int] = field(default_factory=dict)
    """A flag's index in the JSON files' lines."""
    at_var: dict[str, int] = field(default_factory=dict)
    """A flag's index in the .env lines (flags whose variable a later flag overrides: absent)."""
    shared: dict[tuple[Any, ...], str] = field(default_factory=dict)
    """flagd entries that flags share (flagd.render), by their kind."""


class Exporter:
    def __init__(self) -> None:
        self._caches: dict[str, _Cache] = {}

    def render(
        self,
        environment: str,
        states: Mapping[str, FlagState],
        defs: Mapping[str, FlagDef],
        *,
        emergency: bool,
        at: float,
        with_flagd: bool,
        with_dotenv: bool,
    ) -> Files:
        old = self._caches.get(environment) or _Cache()
        get = defs.get
        keys = {n: (s.type, s.value, s.decided_by, s.detail, get(n)) for n, s in states.items()}
        names = tuple(keys)
        fresh = (
            names != old.names or (with_flagd and old.flagd is None) or (with_dotenv and old.dotenv is None)
        )
        if fresh:
            new = self._build(names, states, keys, with_flagd, with_dotenv)
        else:
            old_keys = old.keys
            changed = [n for n, k in keys.items() if old_keys[n] != k]  # identity first: cheap
            new = _Cache(names, keys, old.seed, old.flagd, old.dotenv, old.at_name, old.at_var, old.shared)
            if changed:
                new.seed = list(old.seed)
                new.flagd = list(old.flagd) if with_flagd and old.flagd is not None else None
                new.dotenv = list(old.dotenv) if with_dotenv and old.dotenv is not None else None
                if len(new.shared) > 4096:
                    new.shared = {}
                for name in changed:
                    self._fill(new, name, states[name], keys[name][4])
        self._caches[environment] = new

        seed = flagfile.encode(flagfile.render(environment, {}, defs, emergency=emergency, at=at), new.seed)
        flagd_bytes = dotenv_bytes = None
        if with_flagd and new.flagd is not None:
            document = flagd.render(environment, {}, defs, emergency=emergency, at=at)
            flagd_bytes = flagd.encode(document, new.flagd)
        if with_dotenv and new.dotenv is not None:
            text = dotenv.assemble(environment, new.dotenv, emergency=emergency, at=at)
            dotenv_bytes = text.encode("utf-8")
        return Files(seed, flagd_bytes, dotenv_bytes)

    def _build(
        self,
        names: tuple[str, ...],
        states: Mapping[str, FlagState],
        keys: dict[str, _Key],
        with_flagd: bool,
        with_dotenv: bool,
    ) -> _Cache:
        by_name = sorted(names)
        last = {env_var_name(name): name for name in names}  # a later flag's variable wins
        by_var = [last[var] for var in sorted(last)]
        new = _Cache(
            names,
            keys,
            [""] * len(by_name),
            [""] * len(by_name) if with_flagd else None,
            [""] * len(by_var) if with_dotenv else None,
            {name: i for i, name in enumerate(by_name)},
            {name: i for i, name in enumerate(by_var)},
        )
        for name in names:
            self._fill(new, name, states[name], keys[name][4])
        return new

    def _fill(self, cache: _Cache, name: str, state: FlagState, defn: FlagDef | None) -> None:
        i = cache.at_name[name]
        cache.seed[i] = flagfile.row(name, flagfile.entry(state, defn))
        if cache.flagd is not None:
            cache.flagd[i] = flagd.row(name, self._flagd_entry(cache.shared, state, defn))
        j = cache.at_var.get(name)
        if cache.dotenv is not None and j is not None:
            cache.dotenv[j] = f"{env_var_name(name)}={dotenv.value_text(state)}"

    @staticmethod
    def _flagd_entry(shared: dict[tuple[Any, ...], str], state: FlagState, defn: FlagDef | None) -> str:
        if not flagd.shares_entry(state, defn):
            return flagd.encode_entry(flagd.entry(state, defn))
        kind = (state.type, state.value, state.decided_by, state.detail, defn.variants if defn else ())
        text = shared.get(kind)
        if text is None:
            text = shared[kind] = flagd.encode_entry(flagd.entry(state, defn))
        return text
