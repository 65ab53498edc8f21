"""Scheduled flag changes and ramps: create, list, cancel."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..textsafe import visible
from .common import (
    EXIT_OK,
    RAMP_STEPS,
    _engine,
    _out,
)
from .flags import _known_env, _known_flag


def cmd_flags_schedule(args: argparse.Namespace) -> int:
    from ..engine import ScheduleStep, parse_duration, schedules, validate_value

    engine = _engine(args)
    _known_env(engine, args.env)
    defn = _known_flag(engine, args.name)
    now = engine.clock()
    start = schedules.parse_time(args.at, now) if args.at else None
    if args.from_value is not None or args.over is not None:
        if args.from_value is None or args.over is None:
            raise ValueError("a ramp needs --from, --to and --over (e.g. --from 0 --to 100 --over 2h)")
        try:
            over = parse_duration(args.over)
        except ValueError as exc:
            raise ValueError(f"--over: {exc}") from None
        count = RAMP_STEPS if args.steps is None else args.steps
        steps = schedules.ramp_for(
            defn, now if start is None else start, args.from_value, args.to, over, count
        )
    else:
        if start is None:
            raise ValueError("say when: --at TIME (or ramp with --from, --to and --over)")
        if args.steps is not None:
            raise ValueError("--steps is for a ramp (--from, --to, --over)")
        steps = (ScheduleStep(start, validate_value(defn, args.to)),)
    sched = engine.schedule_flag(args.env, args.name, steps, args.reason)
    _warn_without_runner(engine, [sched])
    if args.json:
        _out(_schedule_doc(engine, sched, engine.clock()))
        return EXIT_OK
    print(
        visible(
            f"schedule #{sched.id}: {sched.environment}/{sched.flag} {schedules.plan_text(defn.type, sched.steps)}"
        )
    )
    print(visible(f"  {_schedule_status(engine, sched, engine.clock())}"))
    return EXIT_OK


def cmd_flags_schedules(args: argparse.Namespace) -> int:
    engine = _engine(args, reading=True)
    if args.env:
        _known_env(engine, args.env)
    now = engine.clock()
    items = engine.flag_schedules(args.env, active_only=not args.all)
    _warn_without_runner(engine, items)
    if args.json:
        _out([_schedule_doc(engine, s, now) for s in items])
        return EXIT_OK
    if not items:
        print("no flag schedules" if args.all else "no pending flag schedules")
    for s in items:
        print(visible(f"#{s.id:<4} {s.environment}/{s.flag}  {_schedule_status(engine, s, now)}"))
        print(visible(f"      by {s.created_by}: {s.reason}"))
    return EXIT_OK


def cmd_flags_cancel(args: argparse.Namespace) -> int:
    s = _engine(args).cancel_schedule(args.id, args.reason)
    print(
        visible(
            f"schedule #{s.id} ({s.environment}/{s.flag}) canceled: {s.next_index} of {len(s.steps)} steps "
            "were applied and stay"
        )
    )
    return EXIT_OK


def _flag_type(engine: Any, s: Any) -> str:
    defn = engine.config.flags.get(s.flag)
    if defn is not None:
        return str(defn.type)
    return "boolean" if all(isinstance(x.value, bool) for x in s.steps) else "percentage"


def _schedule_status(engine: Any, s: Any, now: float) -> str:
    from ..engine import format_duration, schedules

    done = f"{s.next_index}/{len(s.steps)} applied"
    step = s.next_step
    if step is None:
        state = str(s.state)
        text = s.ended_reason if s.ended_reason.startswith(state) else f"{state}: {s.ended_reason}"
        return text if state == "done" else f"{text} ({done})"
    when = datetime.fromtimestamp(step.at).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    left = schedules.remaining(s, now) or 0.0
    due = "due now" if left <= 0 else f"in {format_duration(left)}"
    value = schedules.value_text(_flag_type(engine, s), step.value)
    return f"{s.state}, {done}; next: {value} at {when} ({due})"


def _schedule_doc(engine: Any, s: Any, now: float) -> dict[str, Any]:
    from ..engine import iso, schedules

    step = s.next_step
    return {
        "id": s.id,
        "environment": s.environment,
        "flag": s.flag,
        "type": _flag_type(engine, s),
        "state": str(s.state),
        "applied": s.next_index,
        "steps": [
            {"at": iso(x.at), "at_epoch": x.at, "value": x.value, "applied": i < s.next_index}
            for i, x in enumerate(s.steps)
        ],
        "next": None
        if step is None
        else {"at": iso(step.at), "value": step.value, "in_seconds": schedules.remaining(s, now)},
        "created_by": s.created_by,
        "created_origin": s.created_origin,
        "created_at": iso(s.created_at),
        "reason": s.reason,
        "ended_reason": s.ended_reason,
    }


def _warn_without_runner(engine: Any, items: Sequence[Any]) -> None:
    """On PostgreSQL the database says whether an engine leads (on any host); on SQLite the
    workspace's lock file. Nothing is said when the database cannot be asked."""
    from ..engine import who_runs

    if not any(s.active for s in items):
        return
    runs = who_runs(engine)
    if runs.running is False:
        where = "holds leadership on this store" if runs.shared else "runs on this workspace"
        print(
            f"note: no engine {where}; scheduled steps apply while `opsconsole engine` or the console runs",
            file=sys.stderr,
        )
