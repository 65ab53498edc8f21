"""Rollout commands: status, start and steer, checklist ticks, gate checks, reports, config check."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..textsafe import visible
from .common import (
    EXIT_OK,
    EXIT_PENDING,
    EXIT_REFUSED,
    _engine,
    _out,
)


def cmd_config_check(args: argparse.Namespace) -> int:
    from ..engine import load

    cfg, _ = load(args.config, args.workspace)
    print(
        f"{cfg.path}: ok ({len(cfg.plans)} plans, {len(cfg.flags)} flags, {len(cfg.environments)} environments)"
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from ..engine import Runner, iso, read_health, rollout_row, traffic_text

    engine = _engine(args, reading=True)
    kill = engine.kill_state()
    holder = Runner.holder(engine.workspace)
    health = read_health(engine.workspace, holder)
    rows = [rollout_row(engine, r) for r in engine.rollouts(active_only=not args.all)]
    if args.json:
        _out(
            {
                "workspace": str(engine.workspace),
                "user": engine.actor.user,
                "role": engine.role,
                "engine": {
                    "running": holder is not None,
                    "pid": holder,
                    "state": health.state if health else ("running" if holder else "stopped"),
                    "since": iso(health.since) if health else None,
                    "since_epoch": health.since if health else None,
                    "error": health.error if health else "",
                },
                "kill_switch": {
                    "engaged": kill.engaged,
                    "source": kill.source,
                    "by": kill.by,
                    "reason": kill.reason,
                },
                "rollouts": rows,
            }
        )
        return EXIT_OK
    ks = visible(f"ENGAGED by {kill.by}: {kill.reason}") if kill.engaged else "off"
    runner = f"running (pid {holder})" if holder else "not running (start one with `opsconsole engine`)"
    if health and health.note():
        runner += visible(f", {health.note()}: {health.error}")
    print(f"kill switch: {ks}\nengine: {runner}\nuser: {visible(engine.actor.user)} ({engine.role})")
    if not rows:
        print("no active rollouts" if not args.all else "no rollouts")
    for row in rows:
        print(visible(f"{row['id']:<34} {row['state']:<18} {row['phase']}@{traffic_text(row)}  {row['why']}"))
    return EXIT_OK


def cmd_rollout_start(args: argparse.Namespace) -> int:
    r = _engine(args).start_rollout(args.plan, args.reason)
    print(f"{visible(r.id)} {r.state}: the engine starts its first phase on its next tick")
    return EXIT_OK


def _rollout_command(kind: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        engine = _engine(args)
        if kind == "approve":
            r = engine.approve(args.id, args.reason, override=args.override)
        else:
            r = engine.command(args.id, kind, args.reason)
        print(visible(f"{r.id} {r.state}: {r.reason}"))
        return EXIT_OK

    return handler


def cmd_rollout_tick(args: argparse.Namespace) -> int:
    r = _engine(args).tick_checklist(args.id, args.item)
    print(visible(f"{r.id}: ticked '{args.item}'"))
    return EXIT_OK


def cmd_gates_check(args: argparse.Namespace) -> int:
    import asyncio  # only these commands need an event loop; `kill` must not pay for it

    from ..engine import Verdict, check_now

    engine = _engine(args, reading=True)
    verdicts = asyncio.run(check_now(engine, args.id))
    if args.json:
        _out([{"role": role, **v.to_dict()} for role, v in verdicts])
    else:
        for role, v in verdicts:
            print(visible(f"{role:<5} {v.gate:<16} {v.status:<8} {v.reason}"))
    statuses = {v.status for _, v in verdicts}
    if Verdict.FAIL in statuses:
        return EXIT_REFUSED
    if statuses - {Verdict.PASS}:
        return EXIT_PENDING
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from ..engine import render_report

    print(render_report(_engine(args, reading=True).report(args.id), args.format), end="")
    return EXIT_OK
