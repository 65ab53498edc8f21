"""Flag evaluation: precedence, dependencies and Unleash-compatible percentage bucketing. Pure.

Precedence, highest first: an environment variable named as the upper-cased flag, the
kill switch, the stored value, the definition's default. Then dependencies: a child is off whenever
an ancestor is off, even when the child itself was set by an environment variable, because a child
running without the feature it builds on is exactly the failure `depends_on` exists to prevent.

Environment variables come in as a mapping so this module stays free of I/O and tests can pass any.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import mmh3

from .model import Config, FlagDef, FlagValue, KillSwitchSpec

BOOLEAN = "boolean"
PERCENTAGE = "percentage"
VARIANT = "variant"
FLAG_TYPES = (BOOLEAN, PERCENTAGE, VARIANT)

DECIDERS = ("env", "kill_switch", "stored", "default", "parent")
"""Every value FlagState.decided_by can take, highest precedence first (parent overrides them all)."""

RULES = ("env", "kill_switch", "parent", "targeting", "stored", "default")
"""Every value Evaluation.rule can take: which rule decided a flag for one user, highest first."""

UNLEASH_VARIANT_SEED = 86028157
"""Unleash hashes variants with this seed so a user's variant is independent of their rollout bucket."""

_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
# For percentages "1" and "0" are numbers, so only the words stand for all or nobody.
_PERCENT_WORDS = {"true": 100, "yes": 100, "on": 100, "false": 0, "no": 0, "off": 0}
_NOUN = {BOOLEAN: "a boolean", PERCENTAGE: "a percentage 0..100", VARIANT: "a boolean (variant flag on/off)"}


class UnknownFlag(LookupError):
    """A flag name that is not defined, or not used in the environment asked about."""


def near_miss(word: str, choices: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" when `word` looks like a typo of one of `choices`, else ""."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def find_flag(config: Config, name: str, environment: str | None = None) -> FlagDef:
    """The flag's definition, or UnknownFlag naming what is wrong: the environment, the flag (with a
    near miss), or the flag not being used in that environment. The engine, the CLI and the console
    all look flags up here, so a typo reads the same everywhere."""
    if environment is not None and environment not in config.environments:
        raise UnknownFlag(f"no environment {environment!r} (environments: {', '.join(config.environments)})")
    defn = config.flags.get(name)
    if defn is None:
        raise UnknownFlag(f"no flag {name!r} in the flag definitions{near_miss(name, config.flags)}")
    if environment is not None and not defn.in_environment(environment):
        raise UnknownFlag(
            f"flag {name!r} is not used in {environment} (only in {', '.join(defn.environments)})"
        )
    return defn


def value_text(value: object, flag_type: str) -> str:
    """A flag value as people read it: true / false for booleans, N% for percentages, on / off for
    variant flags (on: users get the variants by weight; off: everyone gets the first); `unset` for a
    missing value (a history row before the first change)."""
    if value is None:
        return "unset"
    if flag_type == PERCENTAGE:
        return f"{int(value)}%"  # type: ignore[call-overload]
    if flag_type == VARIANT:
        return "on" if value else "off"
    return "true" if value else "false"


def unleash_bucket(group_id: str, user_id: str) -> int:
    """The user's bucket 1..100, as Unleash's gradual rollout computes it:
    murmur3 x86 32-bit, seed 0, over "<groupId>:<userId>", then % 100 + 1."""
    return mmh3.hash(f"{group_id}:{user_id}", 0, signed=False) % 100 + 1


def in_rollout(percentage: int, group_id: str, user_id: str) -> bool:
    """On when the user's bucket is within the percentage, so raising 10 -> 25 keeps the first 10 on."""
    return percentage > 0 and unleash_bucket(group_id, user_id) <= percentage


@dataclass(frozen=True)
class FlagState:
    """A flag's effective value in one environment and which rule decided it."""

    name: str
    type: str
    value: FlagValue
    decided_by: str
    """One of DECIDERS."""
    detail: str = ""
    """env: the variable's name; parent: the ancestor that is off (the one nearest the root)."""
    warning: str = ""
    """Set when an override or stored value was invalid and ignored; the console shows it."""

    @property
    def enabled(self) -> bool:
        """On for anyone at all: true, or a percentage above 0."""
        return bool(self.value)


@lru_cache(maxsize=65536)
def env_var_name(flag: str) -> str:
    """The environment variable that overrides `flag`: upper-cased, and characters a shell variable
    cannot hold (dots, dashes) turned into underscores so every flag can be overridden."""
    return re.sub(r"[^A-Za-z0-9_]", "_", flag).upper()


def off_value(flag_type: str) -> FlagValue:
    return 0 if flag_type == PERCENTAGE else False


def on_value(flag_type: str) -> FlagValue:
    return 100 if flag_type == PERCENTAGE else True


def parse_env_value(flag_type: str, text: str) -> FlagValue:
    """Parse an override as typed in a shell. Booleans: true/false, 1/0, yes/no, on/off (any case).
    Percentages: an integer 0..100 (a trailing % is allowed), or true/false, yes/no, on/off for 100/0."""
    word = text.strip().lower()
    if flag_type in (BOOLEAN, VARIANT):
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise ValueError(f"{text!r} is not a boolean (use true/false, 1/0, yes/no or on/off)")
    if flag_type == PERCENTAGE:
        if word in _PERCENT_WORDS:
            return _PERCENT_WORDS[word]
        digits = word.removesuffix("%").strip()
        if digits.isdigit() and int(digits) <= 100:
            return int(digits)
        raise ValueError(f"{text!r} is not a percentage (use an integer 0..100, or true/false)")
    raise ValueError(f"unknown flag type {flag_type!r} (expected one of {', '.join(FLAG_TYPES)})")


def validate_value(defn: FlagDef, value: object) -> FlagValue:
    """The value normalised for the flag's type, or ValueError naming the flag.

    Booleans also take 0/1 (what a database column gives back); percentages take true/false as
    100/0 and integral floats (what JSON may give back); text is parsed like an environment override.
    """
    if isinstance(value, str):
        try:
            return parse_env_value(defn.type, value)
        except ValueError:
            pass  # reported below in the same words as any other bad value
    if defn.type in (BOOLEAN, VARIANT):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{defn.name}: expected true or false, got {value!r}")
    if defn.type == PERCENTAGE:
        if isinstance(value, bool):
            return 100 if value else 0
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and 0 <= value <= 100:
            return value
        raise ValueError(f"{defn.name}: percentage must be an integer 0..100, got {value!r}")
    raise ValueError(
        f"{defn.name}: unknown flag type {defn.type!r} (expected one of {', '.join(FLAG_TYPES)})"
    )


def _normalise_default(defn: FlagDef, environment: str | None = None) -> FlagValue:
    # FlagDef's dataclass default is False even for percentage flags: read that as 0%.
    default = defn.default_for(environment)
    if defn.type == PERCENTAGE and isinstance(default, bool):
        return 100 if default else 0
    if defn.type != PERCENTAGE and not isinstance(default, bool):
        return bool(default)
    return default


def dependency_cycles(defs: Mapping[str, FlagDef]) -> list[tuple[str, ...]]:
    """Every `depends_on` cycle once, as the path that closes it: ("a", "b", "a"). Config loading
    reports each as an error; resolve() refuses a cycle rather than loop on it."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    found: list[tuple[str, ...]] = []
    for start in defs:
        path: list[str] = []
        name: str | None = start
        while name is not None and name in defs and state.get(name) is None:
            state[name] = 1
            path.append(name)
            name = defs[name].depends_on
        if name is not None and state.get(name) == 1:
            found.append((*path[path.index(name) :], name))
        for n in path:
            state[n] = 2
    return found


_new = object.__new__
_set_attr = object.__setattr__


def _state(name: str, kind: str, value: FlagValue, decided_by: str, detail: str, warning: str) -> FlagState:
    # The frozen dataclass __init__ makes six guarded setattr calls; filling __dict__ at once is about
    # twice as fast on the export path and gives an equal object.
    state = _new(FlagState)
    _set_attr(
        state,
        "__dict__",
        {
            "name": name,
            "type": kind,
            "value": value,
            "decided_by": decided_by,
            "detail": detail,
            "warning": warning,
        },
    )
    return state


def resolve(
    defs: Mapping[str, FlagDef],
    stored: Mapping[str, FlagValue],
    *,
    kill: KillSwitchSpec | None,
    environ: Mapping[str, str],
    environment: str | None = None,
) -> dict[str, FlagState]:
    """Every defined flag's effective state. `kill` not None means the kill switch is engaged.
    Stored values for flags that are not defined are ignored; an invalid environment override or
    stored value falls through to the next rule and is reported in the state's `warning`.
    With `environment`, flags scoped to other environments are left out and per-environment
    defaults apply."""
    # This runs on every flag-file export with up to 10,000 flags (target: under 20 ms), hence one
    # pass with fast paths for already-valid values; the slow paths give the same answers.
    env = {k: v for k, v in environ.items() if v.strip()}  # VAR= (set but empty) means no override
    forced: dict[str, bool] = {}
    if kill is not None:
        forced.update(dict.fromkeys(kill.flags_on, True))
        forced.update(dict.fromkeys(kill.flags_off, False))  # off wins if a flag is listed in both

    out: dict[str, FlagState] = {}
    dependents: list[tuple[str, FlagDef]] = []
    for name, defn in defs.items():
        if defn.environments and environment is not None and environment not in defn.environments:
            continue
        kind = defn.type
        value: FlagValue | None = None
        decided_by = detail = warning = ""
        if env:
            var = env_var_name(name)
            text = env.get(var)
            if text is not None:
                try:
                    value, decided_by, detail = parse_env_value(kind, text), "env", var
                except ValueError:
                    warning = f"{var}={text!r} is not {_NOUN.get(kind, f'a {kind} value')}; ignored"
        if value is None and forced and name in forced:
            value, decided_by = (on_value(kind) if forced[name] else off_value(kind)), "kill_switch"
        if value is None and name in stored:
            value = stored[name]
            # Inlined check that the value is already valid (the common case); validate_value otherwise.
            if not (type(value) is int and 0 <= value <= 100 if kind == PERCENTAGE else type(value) is bool):
                try:
                    value = validate_value(defn, value)
                except ValueError as exc:
                    value = None
                    note = f"stored value ignored: {exc}"
                    warning = f"{warning}; {note}" if warning else note
            decided_by = "stored"
        if value is None:
            value = defn.default_for(environment) if defn.env_defaults else defn.default
            if not (type(value) is int and 0 <= value <= 100 if kind == PERCENTAGE else type(value) is bool):
                value = _normalise_default(defn, environment)
            decided_by = "default"
        # _state() inlined: one call per flag is measurable at 10,000 flags.
        state = _new(FlagState)
        _set_attr(
            state,
            "__dict__",
            {
                "name": name,
                "type": kind,
                "value": value,
                "decided_by": decided_by,
                "detail": detail,
                "warning": warning,
            },
        )
        out[name] = state
        if defn.depends_on is not None:
            dependents.append((name, defn))

    if dependents:
        blocker_of = _OffAncestors(defs, out)
        for name, defn in dependents:
            blocker = blocker_of(defn.depends_on)  # type: ignore[arg-type]
            if blocker is not None:
                kind = defn.type
                out[name] = _state(name, kind, off_value(kind), "parent", blocker, out[name].warning)
    return out


class _OffAncestors:
    """blocker_of(flag): the ancestor-or-self nearest the root whose own value is off, or None.

    Walks only the chains that are asked about, iteratively and memoised, so a 10,000-deep chain
    neither recurses nor costs more than one pass. An undefined parent constrains nothing (config
    loading reports it); a cycle is refused rather than looped on.
    """

    def __init__(self, defs: Mapping[str, FlagDef], own: Mapping[str, FlagState]) -> None:
        self.defs = defs
        self.own = own
        self.memo: dict[str, str | None] = {}

    def __call__(self, start: str) -> str | None:
        memo = self.memo
        if start in memo:
            return memo[start]
        if start not in self.own:  # undefined, or not in this environment
            return None
        chain: list[str] = []
        on_chain: set[str] = set()
        cur: str | None = start
        while cur is not None and cur not in memo:
            if cur in on_chain:
                cycle = " -> ".join([*chain[chain.index(cur) :], cur])
                raise ValueError(f"flag dependency cycle: {cycle}")
            chain.append(cur)
            on_chain.add(cur)
            parent = self.defs[cur].depends_on
            cur = parent if parent in self.own else None
        above = memo[cur] if cur is not None else None
        for name in reversed(chain):
            if above is None and not self.own[name].value:
                above = name
            memo[name] = above
        return memo[start]


def is_on(state: FlagState, user_id: str | None = None, group_id: str | None = None) -> bool:
    """Whether the flag is on for this user. Percentage flags bucket the user like Unleash's
    gradual rollout (groupId defaults to the flag name); without a user only 100% counts as on."""
    if state.type == PERCENTAGE:
        percentage = int(state.value)
        if user_id is None:
            return percentage >= 100
        return in_rollout(percentage, group_id or state.name, user_id)
    return bool(state.value)


# ------------------------------------------------------------------------------ per-user evaluation


class EvalContext(NamedTuple):
    """Who is asking: the user id (flagd's targetingKey), their tenant and region."""

    user: str | None = None
    tenant: str | None = None
    region: str | None = None


class Evaluation(NamedTuple):
    """A flag's answer for one user and why. `value` is what a consumer gets: a bool, or for a
    variant flag the variant's name. `rule` is one of RULES; `detail` says it in words."""

    flag: str
    value: bool | str
    rule: str
    detail: str
    bucket: int | None = None
    """Percentage and variant flags: the user's bucket (Unleash: 1..100; flagd: 0..99)."""
    threshold: int | None = None
    """Percentage flags: the percentage the bucket is compared with."""

    @property
    def on(self) -> bool:
        """Boolean and percentage flags: the answer. A variant flag always gives a variant: False."""
        return self.value is True


def unleash_variant(group_id: str, user_id: str, variants: tuple[tuple[str, int], ...]) -> tuple[str, int]:
    """(variant, bucket 1..total weight) as Unleash assigns variants: murmur3 with the variant seed
    over "<groupId>:<userId>", % total weight + 1, then the first variant whose cumulative weight
    reaches it."""
    total = sum(w for _, w in variants)
    target = mmh3.hash(f"{group_id}:{user_id}", UNLEASH_VARIANT_SEED, signed=False) % total + 1
    counter = 0
    for name, weight in variants:
        counter += weight
        if counter >= target:
            return name, target
    return variants[-1][0], target


def targeted(defn: FlagDef, ctx: EvalContext) -> str:
    """Why the user is in the flag's targeting ("user u1 is listed"), or "" when they are not."""
    t = defn.targeting
    if not t:
        return ""
    if ctx.user is not None and ctx.user in t.users:
        return f"user {ctx.user} is in targeting.users"
    if ctx.tenant is not None and ctx.tenant in t.tenants:
        return f"tenant {ctx.tenant} is in targeting.tenants"
    if ctx.region is not None and ctx.region in t.regions:
        return f"region {ctx.region} is in targeting.regions"
    return ""


_FORCING = {"env": "environment variable", "kill_switch": "kill switch", "parent": "parent"}


def evaluate(state: FlagState, defn: FlagDef, ctx: EvalContext) -> Evaluation:
    """The console's own answer (what the seed-schema JSON consumers, the demo service and the
    canary compute): Unleash's gradual rollout for percentages, Unleash's variant hashing."""
    return _evaluate(state, defn, ctx, _unleash_split)


def flagd_evaluate(state: FlagState, defn: FlagDef, ctx: EvalContext) -> Evaluation:
    """What an OpenFeature consumer of the flagd export gets: the same rules, but percentages and
    variants are placed by flagd's `fractional` (see flagd_bucket), so a user may land differently."""
    return _evaluate(state, defn, ctx, _flagd_split)


def _evaluate(state: FlagState, defn: FlagDef, ctx: EvalContext, split: _Split) -> Evaluation:
    name = state.name
    kind = state.type
    decided = state.decided_by
    if decided in _FORCING:
        # The environment variable, the kill switch and an off parent apply to everyone.
        if decided == "parent":
            detail = f"parent {state.detail} is off"
        elif decided == "env":
            detail = f"{state.detail} is set"
        else:
            detail = "the kill switch is engaged"
        if kind == VARIANT:
            return _variant_forced(name, defn, state, decided, detail, split, ctx)
        if kind == PERCENTAGE:
            pct = int(state.value)
            if pct in (0, 100):
                return Evaluation(name, pct == 100, decided, f"{detail}: {pct}%")
            return split(name, defn, ctx, pct, decided, f"{detail}: {pct}%")
        return Evaluation(name, bool(state.value), decided, detail)
    why = targeted(defn, ctx)
    if why:
        value: bool | str = True
        if kind == VARIANT:
            return split(name, defn, ctx, 100, "targeting", why)
        return Evaluation(name, value, "targeting", why)
    where = "stored value" if decided == "stored" else "default"
    if kind == PERCENTAGE:
        pct = int(state.value)
        if pct in (0, 100):
            return Evaluation(name, pct == 100, decided, f"{where} {pct}%", None, pct)
        return split(name, defn, ctx, pct, decided, f"{where} {pct}%")
    if kind == VARIANT:
        if not state.value:
            return Evaluation(
                name, defn.variants[0][0], decided, f"{where}: off, everyone gets the first variant"
            )
        return split(name, defn, ctx, 100, decided, f"{where}: on")
    return Evaluation(name, bool(state.value), decided, where)


def _variant_forced(
    name: str, defn: FlagDef, state: FlagState, rule: str, detail: str, split: _Split, ctx: EvalContext
) -> Evaluation:
    if state.value:
        return split(name, defn, ctx, 100, rule, detail)
    return Evaluation(name, defn.variants[0][0], rule, f"{detail}: off, everyone gets the first variant")


_Split = Callable[[str, FlagDef, EvalContext, int, str, str], Evaluation]
"""Places a user for a percentage or variant split: Unleash's way or flagd's."""


def _unleash_split(
    name: str, defn: FlagDef, ctx: EvalContext, pct: int, rule: str, detail: str
) -> Evaluation:
    if not ctx.user:  # flagd-core treats an empty targetingKey as none; so does Unleash
        return Evaluation(name, _no_user_value(defn, pct), rule, f"{detail}; no user id, so no bucket")
    if defn.type == VARIANT:
        variant, bucket = unleash_variant(name, ctx.user, defn.variants)
        return Evaluation(name, variant, rule, f"{detail}; variant bucket {bucket}", bucket)
    bucket = unleash_bucket(name, ctx.user)
    on = bucket <= pct
    return Evaluation(name, on, rule, f"{detail}; bucket {bucket} {'<=' if on else '>'} {pct}", bucket, pct)


def _flagd_split(name: str, defn: FlagDef, ctx: EvalContext, pct: int, rule: str, detail: str) -> Evaluation:
    if not ctx.user:  # flagd-core treats an empty targetingKey as none; so does Unleash
        return Evaluation(name, _no_user_value(defn, pct), rule, f"{detail}; no targetingKey, so no bucket")
    if defn.type == VARIANT:
        bucket = flagd_bucket(name, ctx.user, sum(w for _, w in defn.variants))
        return Evaluation(
            name, _flagd_variant(defn.variants, bucket), rule, f"{detail}; fractional bucket {bucket}", bucket
        )
    bucket = flagd_bucket(name, ctx.user, 100)
    on = bucket < pct
    return Evaluation(
        name, on, rule, f"{detail}; fractional bucket {bucket} {'<' if on else '>='} {pct}", bucket, pct
    )


def _flagd_variant(variants: tuple[tuple[str, int], ...], bucket: int) -> str:
    """The variant whose cumulative weight range holds the bucket (flagd: bucket < range end)."""
    end = 0
    for name, weight in variants:
        end += weight
        if bucket < end:
            return name
    return variants[-1][0]


def _no_user_value(defn: FlagDef, pct: int) -> bool | str:
    if defn.type == VARIANT:
        return defn.variants[0][0]
    return pct >= 100


def flagd_bucket(flag: str, targeting_key: str, total_weight: int = 100) -> int:
    """The bucket 0..total_weight-1 flagd's `fractional` shorthand gives a user, as flagd-core 2.x
    computes it: murmur3 (x86 32-bit, seed 0, unsigned) over the canonical CBOR encoding of
    [flagKey, targetingKey], then (hash * total_weight) >> 32."""
    h = mmh3.hash(_cbor_pair(flag, targeting_key), 0, signed=False)
    return (h * total_weight) >> 32


def _cbor_pair(a: str, b: str) -> bytes:
    """Canonical CBOR of a two-element array of text strings (RFC 8949 §4.2: shortest lengths)."""
    return b"\x82" + _cbor_text(a) + _cbor_text(b)


def _cbor_text(text: str) -> bytes:
    data = text.encode("utf-8")
    n = len(data)
    if n < 24:
        head = bytes((0x60 + n,))
    elif n < 0x100:
        head = bytes((0x78, n))
    elif n < 0x10000:
        head = b"\x79" + n.to_bytes(2, "big")
    elif n < 0x100000000:
        head = b"\x7a" + n.to_bytes(4, "big")
    else:
        head = b"\x7b" + n.to_bytes(8, "big")
    return head + data
