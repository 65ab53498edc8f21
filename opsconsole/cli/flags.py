"""Feature flag commands: list, set, evaluate for one user, history."""

from __future__ import annotations

import argparse
from typing import Any

from ..textsafe import visible
from .common import (
    EXIT_OK,
    _engine,
    _out,
)


def cmd_flags_list(args: argparse.Namespace) -> int:
    engine = _engine(args, reading=True)
    envs = (
        [args.env] if args.env else [n for n, e in engine.config.environments.items() if e.flags is not None]
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for env in envs:
        if env not in engine.config.environments:
            raise ValueError(f"no environment {env!r}")
        states = engine.flag_states(env)
        ages = engine.flag_ages(env)
        out[env] = [
            {
                "name": s.name,
                "type": s.type,
                "value": s.value,
                "decided_by": s.decided_by,
                "detail": s.detail,
                "risk": engine.config.flags[s.name].risk,
                "warning": s.warning,
                "kind": engine.config.flags[s.name].kind,
                **_age_fields(ages.get(s.name)),
            }
            for s in sorted(states.values(), key=lambda s: s.name)
        ]
    if args.json:
        _out(out)
        return EXIT_OK
    for env, rows in out.items():
        print(visible(f"[{env}]"))
        for row in rows:
            value = f"{row['value']}%" if row["type"] == "percentage" else str(row["value"]).lower()
            declared = f"={value}, override declared for {env}" if row["decided_by"] == "env" else ""
            why = row["decided_by"] + (f" ({row['detail']}{declared})" if row["detail"] else "")
            stale = "STALE" if row["stale"] else ""
            line = f"  {row['name']:<36} {value:<6} {why:<28} risk={row['risk']:<6} {row['kind']:<11} {stale}"
            print(visible(line.rstrip()))
    return EXIT_OK


def _age_fields(age: Any) -> dict[str, Any]:
    if age is None:
        return {"stale": False, "age_seconds": None, "age": "age unknown"}
    return {"stale": age.stale, "age_seconds": age.age, "age": age.detail}


def cmd_flags_set(args: argparse.Namespace) -> int:
    engine = _engine(args)
    defn = engine.config.flags.get(args.name)
    if defn is None:
        raise ValueError(f"no flag {args.name!r} in the flag definitions")
    from ..engine import parse_env_value

    try:
        value = parse_env_value(defn.type, args.value)
    except ValueError as exc:
        raise ValueError(f"flag {args.name} ({defn.type}): {exc}") from None
    old = engine.set_flag(args.env, args.name, value, args.reason)
    print(visible(f"{args.env}/{args.name}: {old} -> {value}"))
    return EXIT_OK


def cmd_flags_eval(args: argparse.Namespace) -> int:
    from ..engine import EvalContext

    engine = _engine(args, reading=True)
    env = args.env or _production_environment(engine.config)
    ctx = EvalContext(args.user, args.tenant, args.region)
    state, own, flagd = engine.evaluate_flag(env, args.name, ctx)
    answers = {"console": own, "flagd": flagd}
    doc = {
        "flag": args.name,
        "environment": env,
        "context": ctx._asdict(),
        "state": {
            "value": state.value,
            "decided_by": state.decided_by,
            "detail": state.detail,
            "warning": state.warning,
        },
        **{k: {f: getattr(e, f) for f in e._fields if f != "flag"} for k, e in answers.items()},
        "differ": own.value != flagd.value,
    }
    if args.json:
        _out(doc)
        return EXIT_OK
    who = ", ".join(f"{k} {v}" for k, v in ctx._asdict().items() if v is not None)
    print(visible(f"{args.name} in {env} for {who}"))
    shown = f"{state.value}%" if state.type == "percentage" else str(state.value).lower()
    print(
        visible(
            f"  flag value: {shown}, decided by {state.decided_by}"
            + (f" ({state.detail})" if state.detail else "")
        )
    )
    for label, e in (
        ("console (Unleash: JSON file, demo, canary)", own),
        ("flagd fractional (OpenFeature)", flagd),
    ):
        value = str(e.value).lower() if isinstance(e.value, bool) else e.value
        print(visible(f"  {label:<44} {value:<8} rule={e.rule}: {e.detail}"))
    if doc["differ"]:
        print(
            "  the two consumers disagree for this user: the console buckets users as Unleash does (murmur3"
            ' of "flag:user", 1..100) and flagd\'s fractional hashes the flag and user together (0..99), so'
            " the same percentage picks different users"
        )
    return EXIT_OK


def _production_environment(config: Any) -> str:
    for name, env in config.environments.items():
        if env.production:
            return str(name)
    return str(next(iter(config.environments)))


def _known_flag(engine: Any, name: str) -> Any:
    from ..engine import suggest

    defn = engine.config.flags.get(name)
    if defn is None:
        raise ValueError(f"no flag {name!r} in the flag definitions{suggest(name, engine.config.flags)}")
    return defn


def _known_env(engine: Any, env: str) -> str:
    from ..engine import suggest

    if env not in engine.config.environments:
        raise ValueError(f"no environment {env!r}{suggest(env, engine.config.environments)}")
    return env


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def cmd_flags_history(args: argparse.Namespace) -> int:
    from ..engine import iso

    engine = _engine(args, reading=True)
    envs = [_known_env(engine, args.env)] if args.env else list(engine.config.environments)
    changes = [
        {"environment": env, **h, "at": iso(h["at"]), "at_epoch": h["at"]}
        for env in envs
        for h in engine.flag_history(env, args.name)
    ]
    if not changes:
        _known_flag(engine, args.name)  # a flag no longer defined still shows the history it left
    changes.sort(key=lambda c: (c["at_epoch"], c["environment"]))
    if args.json:
        _out({"flag": args.name, "changes": changes})
        return EXIT_OK
    if not changes:
        where = f" in {args.env}" if args.env else ""
        print(visible(f"{args.name}: no changes recorded{where} (it has its default value)"))
    for c in changes:
        who = f"{c['actor']}@{c['origin']}"
        print(
            visible(
                f"{c['at']}  {c['environment']:<11} {who:<24} {_shown(c['old'])} -> {_shown(c['new'])}  {c['reason']}"
            )
        )
    return EXIT_OK
