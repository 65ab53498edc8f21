"""The incremental exporter: the same bytes as the targets' own render() + encode() after any sequence
of changes, and only changed flags encoded again."""

from __future__ import annotations

import random
from dataclasses import replace

from opsconsole.engine.flags import FlagState, resolve
from opsconsole.engine.model import FlagDef, KillSwitchSpec, Targeting
from opsconsole.engine.targets import dotenv, flagd, flagfile
from opsconsole.engine.targets.exporter import Exporter

AT = 1_700_000_000.25
SPLIT = (("control", 50), ("blue", 30), ("green", 20))
WHO = Targeting(frozenset({"u1"}), frozenset({"acme"}), frozenset())


def defs_for(n: int) -> dict[str, FlagDef]:
    out: dict[str, FlagDef] = {}
    for i in range(n):
        name = f"flag_{i:03d}"
        kind = i % 5
        parent = f"flag_{i - i % 10:03d}" if i % 10 == 3 else None
        if kind < 2:
            d = FlagDef(name, "boolean", bool(i % 2), description=f"d{i} ü", depends_on=parent)
        elif kind < 4:
            d = FlagDef(name, "percentage", i % 101, risk="high", depends_on=parent)
        else:
            d = FlagDef(name, "variant", bool(i % 2), variants=SPLIT, depends_on=parent)
        if i % 7 == 0:
            d = replace(d, targeting=WHO)
        out[name] = d
    # Two flags whose .env variable is the same: the later one's line is the file's.
    out["dup.x"] = FlagDef("dup.x", "boolean", True)
    out["dup_x"] = FlagDef("dup_x", "boolean", False)
    return out


def expected(env: str, states: dict[str, FlagState], defs: dict[str, FlagDef], emergency: bool) -> tuple:
    return (
        flagfile.encode(flagfile.render(env, states, defs, emergency=emergency, at=AT)),
        flagd.encode(flagd.render(env, states, defs, emergency=emergency, at=AT)),
        dotenv.render(env, states, emergency=emergency, at=AT).encode(),
    )


def test_same_bytes_as_the_targets_after_every_change() -> None:
    rng = random.Random(7)
    defs = defs_for(120)
    exporter = Exporter()
    stored: dict[str, object] = {}
    kill = None
    for step in range(40):
        name = rng.choice(sorted(defs))
        change = step % 6
        if change == 0:
            stored[name] = rng.randint(0, 100) if defs[name].type == "percentage" else rng.random() < 0.5
        elif change == 1:  # a new configuration: new definition objects, one description changed
            defs = dict(defs)
            defs[name] = replace(defs[name], description=f"changed {step}")
        elif change == 2:
            defs = {k: v for k, v in defs.items() if k != name}  # a flag removed
        elif change == 3:
            defs = dict(defs) | {f"new_{step}": FlagDef(f"new_{step}", "percentage", 5)}  # one added
        elif change == 4:
            kill = None if kill else KillSwitchSpec(flags_off=(name,), flags_on=())
        states = resolve(defs, stored, kill=kill, environ={}, environment="production")
        emergency = kill is not None
        with_flagd, with_dotenv = step % 4 != 1, step % 5 != 2
        got = exporter.render(
            "production",
            states,
            defs,
            emergency=emergency,
            at=AT,
            with_flagd=with_flagd,
            with_dotenv=with_dotenv,
        )
        seed, fd, env = expected("production", states, defs, emergency)
        assert got.seed == seed, step
        assert got.flagd == (fd if with_flagd else None), step
        assert got.dotenv == (env if with_dotenv else None), step


def test_environments_are_kept_apart_and_empty_is_fine() -> None:
    defs = defs_for(30)
    exporter = Exporter()
    for env, stored in (
        ("staging", {"flag_001": True}),
        ("production", {"flag_001": False}),
        ("staging", {}),
    ):
        states = resolve(defs, stored, kill=None, environ={}, environment=env)
        got = exporter.render(env, states, defs, emergency=False, at=AT, with_flagd=True, with_dotenv=True)
        assert (got.seed, got.flagd, got.dotenv) == expected(env, states, defs, False)
    got = exporter.render("dev", {}, {}, emergency=True, at=AT, with_flagd=True, with_dotenv=True)
    assert (got.seed, got.flagd, got.dotenv) == expected("dev", {}, {}, True)


def test_only_changed_flags_are_encoded_again() -> None:
    defs = defs_for(200)
    exporter = Exporter()
    states = resolve(defs, {}, kill=None, environ={}, environment="production")
    exporter.render("production", states, defs, emergency=False, at=AT, with_flagd=True, with_dotenv=True)
    cache = exporter._caches["production"]
    before = {"seed": list(cache.seed), "flagd": list(cache.flagd or []), "env": list(cache.dotenv or [])}
    states = resolve(defs, {"flag_002": 77}, kill=None, environ={}, environment="production")
    exporter.render("production", states, defs, emergency=False, at=AT, with_flagd=True, with_dotenv=True)
    cache = exporter._caches["production"]
    after = {"seed": cache.seed, "flagd": cache.flagd or [], "env": cache.dotenv or []}
    for kind, lines in after.items():
        again = [line for i, line in enumerate(lines) if line is not before[kind][i]]
        assert len(again) == 1 and "FLAG_002" in again[0].upper(), kind
