"""Rollout commands: status, start and steer, checklist ticks, gate checks, reports, config check."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..textsafe import visible
from .common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_REFUSED,
    _engine,
    _out,
)

if TYPE_CHECKING:
    from ..engine import OutboxSummary


def cmd_config_check(args: argparse.Namespace) -> int:
    from ..engine import StoreError, load, missing_notification_secrets, store_login, superuser_warning

    cfg, _ = load(args.config, args.workspace)
    # The file is sound; what it names outside itself (a bot token's variable) is checked here, not
    # at load: the kill switch must work in a shell that lacks it.
    unset = missing_notification_secrets(cfg.notifications)
    for problem in unset:
        print(visible(f"{cfg.path}: {problem}"), file=sys.stderr)
    if unset:
        return EXIT_INPUT
    # Who a console on this store acts as: a superuser login is said (it can rewrite anything). The
    # file is still sound when the server cannot be reached: that is said too, not an error.
    try:
        warning = superuser_warning(store_login(cfg.store, password_env=cfg.store_password_env))
    except StoreError as exc:
        warning = f"the store's login was not checked: {exc}"
    if warning:
        print(visible(f"warning: {cfg.path}: {warning}"), file=sys.stderr)
    print(
        f"{cfg.path}: ok ({len(cfg.plans)} plans, {len(cfg.flags)} flags, {len(cfg.environments)} environments)"
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from ..engine import iso, notification_summary, read_health, rollout_row, traffic_text, who_runs

    engine = _engine(args, reading=True, login_warning=args.json)
    kill = engine.kill_state()
    # On PostgreSQL the database says who leads (an engine on any host); on SQLite the lock file.
    runs = who_runs(engine)
    holder = runs.pid
    health = read_health(engine.workspace, holder)  # the health file: only an engine on this host
    rows = [rollout_row(engine, r) for r in engine.rollouts(active_only=not args.all)]
    notes = notification_summary(engine.store)
    if args.json:
        _out(
            {
                "workspace": str(engine.workspace),
                "user": engine.actor.user,
                "role": engine.role,
                "warnings": [engine.login_warning] if engine.login_warning else [],
                "engine": {
                    "running": runs.running,
                    "pid": holder,
                    "leader": runs.leader or None,
                    "state": health.state
                    if health
                    else {True: "running", False: "stopped", None: "unknown"}[runs.running],
                    "since": iso(health.since) if health else None,
                    "since_epoch": health.since if health else None,
                    "error": health.error if health else runs.error,
                },
                "kill_switch": {
                    "engaged": kill.engaged,
                    "source": kill.source,
                    "by": kill.by,
                    "reason": kill.reason,
                },
                "notifications": {"configured": len(engine.config.notifications), **notes.to_dict()},
                "rollouts": rows,
            }
        )
        return EXIT_OK
    ks = visible(f"ENGAGED by {kill.by}: {kill.reason}") if kill.engaged else "off"
    runner = visible(runs.text())
    if health and health.note():
        runner += visible(f", {health.note()}: {health.error}")
    if engine.login_warning:
        print(visible(f"warning: {engine.login_warning}"))
    print(f"kill switch: {ks}\nengine: {runner}\nuser: {visible(engine.actor.user)} ({engine.role})")
    print(_notifications_text(notes, len(engine.config.notifications)))
    if not rows:
        print("no active rollouts" if not args.all else "no rollouts")
    for row in rows:
        print(visible(f"{row['id']:<34} {row['state']:<18} {row['phase']}@{traffic_text(row)}  {row['why']}"))
    return EXIT_OK


def _notifications_text(notes: OutboxSummary, configured: int) -> str:
    counts = f"{notes.delivered} delivered, {notes.pending} pending, {notes.failed} failed"
    if not configured and not (notes.delivered or notes.pending or notes.failed):
        return "notifications: none configured"
    lines = [f"notifications: {counts}" if notes.troubles else f"notifications: ok ({counts})"]
    for t in notes.troubles:
        what = "gave up" if t.state == "failed" else "retrying"
        lines.append(
            visible(f"  {what} after {t.attempts} attempt(s): {t.event} to {t.destination}: {t.error}")
        )
    return "\n".join(lines)


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
