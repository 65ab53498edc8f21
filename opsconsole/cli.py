"""Command line: parse arguments, call the engine (or the demo), print, exit with a meaningful code.

Exit codes (also in README): 0 ok; 1 refused by the rules, or a gate fails; 2 bad input (config
errors, unknown names, bad arguments); 3 pending or unknown (gates not decidable yet, timeouts);
4 not permitted (role or read-only); 5 the store is unavailable or kept changing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from .textsafe import VisibleStream, visible

EXIT_OK, EXIT_REFUSED, EXIT_INPUT, EXIT_PENDING, EXIT_FORBIDDEN, EXIT_STORE = 0, 1, 2, 3, 4, 5
RAMP_STEPS = 4


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        help="main configuration file (default: workspace's opsconsole.yaml, else config/opsconsole.yaml)",
    )
    p.add_argument("--workspace", default=None, help="state directory (default: ./.opsconsole)")
    p.add_argument("--read-only", action="store_true", help="refuse every action that changes state")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _common(common)
    parser = argparse.ArgumentParser(
        prog="opsconsole", description="Operations console for safe phased rollouts."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    cfg = sub.add_parser("config", help="configuration").add_subparsers(dest="sub", required=True)
    cfg.add_parser("check", parents=[common], help="validate configuration; exit 2 with file:line errors")

    st = sub.add_parser("status", parents=[common], help="where every rollout stands")
    st.add_argument("--json", action="store_true")
    st.add_argument("--all", action="store_true", help="include finished rollouts")

    ro = sub.add_parser("rollout", help="start and steer rollouts").add_subparsers(dest="sub", required=True)
    start = ro.add_parser("start", parents=[common], help="start a plan")
    start.add_argument("plan")
    start.add_argument("--reason", default="")
    for name in ("promote", "approve", "pause", "resume", "abort", "rollback"):
        c = ro.add_parser(name, parents=[common], help=f"{name} a rollout")
        c.add_argument("id")
        c.add_argument("--reason", required=True)
        if name == "approve":
            c.add_argument("--override", action="store_true", help="admin: approve over failing gates")
    tick = ro.add_parser("tick", parents=[common], help="tick a checklist item of the current phase")
    tick.add_argument("id")
    tick.add_argument("item")

    gates = sub.add_parser("gates", help="gate checks").add_subparsers(dest="sub", required=True)
    gc = gates.add_parser(
        "check",
        parents=[common],
        help="evaluate a rollout's current gates now (0 pass, 1 fail, 3 pending/unknown)",
    )
    gc.add_argument("id")
    gc.add_argument("--json", action="store_true")

    k = sub.add_parser("kill", parents=[common], help="pull the emergency kill switch")
    k.add_argument("--reason", required=True)
    ac = sub.add_parser("all-clear", parents=[common], help="leave the emergency (approver)")
    ac.add_argument("--reason", required=True)

    fl = sub.add_parser("flags", help="feature flags").add_subparsers(dest="sub", required=True)
    fls = fl.add_parser("list", parents=[common], help="flags with value and the rule that decided it")
    fls.add_argument("--env", help="one environment (default: all with a flag target)")
    fls.add_argument("--json", action="store_true")
    fset = fl.add_parser("set", parents=[common], help="set a flag's stored value")
    fset.add_argument("name")
    fset.add_argument("value", help="true/false, or 0..100 for percentage flags")
    fset.add_argument("--env", required=True)
    fset.add_argument("--reason", required=True)
    fev = fl.add_parser(
        "eval", parents=[common], help="a flag for one user: value, deciding rule, bucket, both consumers"
    )
    fev.add_argument("name")
    fev.add_argument("--user", required=True, help="the user id (flagd: targetingKey)")
    fev.add_argument("--tenant", default=None)
    fev.add_argument("--region", default=None)
    fev.add_argument("--env", default=None, help="environment (default: the production one)")
    fev.add_argument("--json", action="store_true")
    _flag_schedule_parsers(fl, common)

    eng = sub.add_parser("engine", parents=[common], help="run the background runner headless")
    eng.add_argument("--interval", type=float, default=None, help="seconds between ticks (default: config)")

    rep = sub.add_parser("report", parents=[common], help="a rollout's timeline for an incident record")
    rep.add_argument("id")
    rep.add_argument("--format", choices=("text", "json", "md"), default="text")

    au = sub.add_parser("audit", parents=[common], help="the audit log")
    au.add_argument("--verify", action="store_true", help="check the hash chain; non-zero when broken")
    au.add_argument("--limit", type=int, default=50)
    au.add_argument("--json", action="store_true")

    con = sub.add_parser("console", parents=[common], help="open the console (the default command)")
    _console_options(con)

    demo = sub.add_parser("demo", parents=[common], help="run the embedded demo environment")
    _console_options(demo)
    demo.add_argument("--headless", action="store_true", help="no screen: run the demo rollout, print JSON")
    demo.add_argument("--auto-approve", action="store_true", help="approve as the actor 'demo' (demo only)")
    demo.add_argument("--fault", choices=("none", "canary-errors", "canary-latency"), default="none")
    demo.add_argument("--port", type=int, default=0, help="sample service port (default: any free port)")
    demo.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    demo.add_argument("--rps", type=float, default=40.0, help="generated requests per second")
    return parser


def _flag_schedule_parsers(fl: Any, common: argparse.ArgumentParser) -> None:
    fhi = fl.add_parser(
        "history", parents=[common], help="every change of a flag: who, when, old -> new, why"
    )
    fhi.add_argument("name")
    fhi.add_argument("--env", default=None, help="one environment (default: all)")
    fhi.add_argument("--json", action="store_true")
    fsc = fl.add_parser(
        "schedule",
        parents=[common],
        help="change a flag later (--at TIME --to VALUE) or ramp it (--from A --to B --over 2h [--steps N])",
    )
    fsc.add_argument("name")
    fsc.add_argument("--env", required=True)
    fsc.add_argument(
        "--at",
        help="14:00 (next occurrence, local time), +30m, or ISO 2026-10-01T14:00; a ramp starts then (default: now)",
    )
    fsc.add_argument("--to", required=True, help="the value: true/false, or 0..100 for percentage flags")
    fsc.add_argument("--from", dest="from_value", help="ramp: the value it starts from (percentage flags)")
    fsc.add_argument("--over", help="ramp: how long it takes, e.g. 2h")
    fsc.add_argument("--steps", type=int, default=None, help=f"ramp: number of steps (default {RAMP_STEPS})")
    fsc.add_argument("--reason", required=True)
    fsc.add_argument("--json", action="store_true")
    fss = fl.add_parser(
        "schedules", parents=[common], help="scheduled flag changes and the time to their next step"
    )
    fss.add_argument("--env", default=None)
    fss.add_argument("--all", action="store_true", help="include done, canceled and stopped schedules")
    fss.add_argument("--json", action="store_true")
    fca = fl.add_parser("cancel", parents=[common], help="cancel a pending flag schedule")
    fca.add_argument("id", type=_schedule_id, help="the schedule's number (from `flags schedules`)")
    fca.add_argument("--reason", required=True)


def _schedule_id(text: str) -> int:
    digits = text.strip().removeprefix("#")
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a schedule number (see `opsconsole flags schedules`)"
        )
    return int(digits)


def _console_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--theme", default=None, help="colour theme (see themes/); NO_COLOR is honoured")
    p.add_argument("--env", default=None, help="environment shown in the header (default: production)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["console", *argv]  # no subcommand: open the console
    args = build_parser().parse_args(argv)
    handler = HANDLERS[(args.command, getattr(args, "sub", None))]
    if handler in (cmd_console, cmd_demo):  # the screen draws itself; headless demo prints JSON
        return _guarded(handler, args)
    with _visible_output():
        return _guarded(handler, args)


@contextlib.contextmanager
def _visible_output() -> Iterator[None]:
    """Every byte a text command prints passes `visible()`: data from plans, reasons and errors never
    reaches the terminal as control codes, whichever print forgets to escape it."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = VisibleStream(out), VisibleStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def _guarded(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - classified below; anything else is re-raised
        return _report(exc)


def _report(exc: Exception) -> int:
    """The exit code and message for an error the engine raises; anything else is a bug: re-raised.
    (Imported here, not at the top: the console's first frame must not wait for the engine.)"""
    from .engine import Conflict, Forbidden, NotFound, Rejected
    from .engine.config import ConfigError
    from .engine.core import FilesBehind
    from .engine.redact import redact_text
    from .engine.store import StoreError

    def shown(e: object) -> str:  # one line per message: a newline in data cannot forge another
        return visible(redact_text(str(e)))

    if isinstance(exc, ConfigError):
        issues = "\n".join(shown(i) for i in exc.issues)
        print(f"configuration errors:\n{issues}", file=sys.stderr)
        return EXIT_INPUT
    if isinstance(exc, NotFound | ValueError):
        print(f"error: {shown(exc)}", file=sys.stderr)
        return EXIT_INPUT
    if isinstance(exc, Rejected):
        print(f"refused: {shown(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(exc, Forbidden):
        print(f"not permitted: {shown(exc)}", file=sys.stderr)
        return EXIT_FORBIDDEN
    if isinstance(exc, FilesBehind):
        print(f"flag files: {exc}", file=sys.stderr)
        return EXIT_STORE
    if isinstance(exc, StoreError | Conflict):
        print(f"store: {shown(exc)}", file=sys.stderr)
        return EXIT_STORE
    raise exc


def _engine(args: argparse.Namespace, reading: bool = False) -> Any:
    """`reading`: the command only reads, so its session is read-only and never takes the store's
    write lock (it answers while another process writes)."""
    from .engine import open_engine

    return open_engine(args.config, args.workspace, read_only=reading or getattr(args, "read_only", False))


def _out(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ------------------------------------------------------------------------------------------ handlers


def cmd_config_check(args: argparse.Namespace) -> int:
    from .engine import load

    cfg, _ = load(args.config, args.workspace)
    print(
        f"{cfg.path}: ok ({len(cfg.plans)} plans, {len(cfg.flags)} flags, {len(cfg.environments)} environments)"
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from .engine import health as engine_health
    from .engine.report import iso
    from .engine.runner import Runner
    from .engine.views import rollout_row, traffic_text

    engine = _engine(args, reading=True)
    kill = engine.kill_state()
    holder = Runner.holder(engine.workspace)
    health = engine_health.read(engine.workspace, holder)
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
    from .engine.checks import check_now
    from .engine.model import Verdict

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


def cmd_kill(args: argparse.Namespace) -> int:
    """Safe flag files first, from configuration alone; then the store's record, which may wait at
    most a couple of seconds for a busy store before the journal keeps it for later."""
    import threading
    import time

    from .engine import killswitch, load
    from .engine.authz import Authz
    from .engine.identity import current_actor

    config, ws = load(args.config, args.workspace)
    ws.mkdir(parents=True, exist_ok=True)
    actor = current_actor()
    Authz.from_config(config, read_only=args.read_only).require(actor, "kill_switch.engage")
    safe = killswitch.make_safe(config, ws, actor, args.reason, time.time())
    outcome: list[Any] = []

    def record() -> None:
        try:
            from .engine.core import Engine

            engine = Engine(config, ws, actor, replay=False)
            outcome.append(killswitch.record(engine, safe, args.reason))
        except Exception as exc:  # noqa: BLE001 - whatever stops the record, the files are safe
            outcome.append(exc)

    # Opening a store someone holds locked can itself wait; the command does not wait longer than
    # this, because the journal line already holds the event.
    worker = threading.Thread(target=record, daemon=True)
    worker.start()
    worker.join(killswitch.RECORD_WAIT + 1.0)
    res = (
        outcome[0]
        if outcome
        else TimeoutError(f"the store did not answer in {killswitch.RECORD_WAIT + 1:g} s")
    )
    if isinstance(res, Exception):
        res = killswitch.KillResult(
            safe.at,
            safe.files,
            [],
            False,
            timings_ms={"files": safe.ms},
            error=f"store: {res}" + (f"; {safe.error}" if safe.error else ""),
            journaled=bool(safe.journal_hash),
        )
    _out(
        {
            "engaged": True,
            "recorded": res.recorded,
            "journaled": res.journaled,
            "already_engaged": res.already_engaged,
            "aborted": res.aborted,
            "files": res.files,
            "timings_ms": {k: round(v, 2) for k, v in res.timings_ms.items()},
            "error": res.error,
        }
    )
    if not res.recorded:
        where = (
            f"kept in {ws / killswitch.JOURNAL}; the next engine or command records it"
            if res.journaled
            else "NOT recorded anywhere (the journal could not be written either): record it by hand"
        )
        print(f"kill switch engaged, flag files safe; the event is {where}: {res.error}", file=sys.stderr)
    return EXIT_OK if res.recorded else EXIT_STORE


def cmd_all_clear(args: argparse.Namespace) -> int:
    _engine(args).all_clear(args.reason)
    print("all-clear: kill switch released; flag files re-exported from stored values")
    return EXIT_OK


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
            why = row["decided_by"] + (f" ({row['detail']})" if row["detail"] else "")
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
    from .engine.flags import parse_env_value

    try:
        value = parse_env_value(defn.type, args.value)
    except ValueError as exc:
        raise ValueError(f"flag {args.name} ({defn.type}): {exc}") from None
    old = engine.set_flag(args.env, args.name, value, args.reason)
    print(visible(f"{args.env}/{args.name}: {old} -> {value}"))
    return EXIT_OK


def cmd_flags_eval(args: argparse.Namespace) -> int:
    from .engine.flags import EvalContext

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
        print("  the two consumers disagree for this user: they hash users differently (DESIGN §7)")
    return EXIT_OK


def _production_environment(config: Any) -> str:
    for name, env in config.environments.items():
        if env.production:
            return str(name)
    return str(next(iter(config.environments)))


# ------------------------------------------------------------------------------ flag history, schedules


def _known_flag(engine: Any, name: str) -> Any:
    from .engine.config.issues import suggest

    defn = engine.config.flags.get(name)
    if defn is None:
        raise ValueError(f"no flag {name!r} in the flag definitions{suggest(name, engine.config.flags)}")
    return defn


def _known_env(engine: Any, env: str) -> str:
    from .engine.config.issues import suggest

    if env not in engine.config.environments:
        raise ValueError(f"no environment {env!r}{suggest(env, engine.config.environments)}")
    return env


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def cmd_flags_history(args: argparse.Namespace) -> int:
    from .engine.report import iso

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


def cmd_flags_schedule(args: argparse.Namespace) -> int:
    from .engine import schedules
    from .engine.config import parse_duration
    from .engine.flags import validate_value
    from .engine.model import ScheduleStep

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
    from .engine import schedules
    from .engine.units import format_duration

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
    from .engine import schedules
    from .engine.report import iso

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
    from .engine.runner import Runner

    if any(s.active for s in items) and Runner.holder(engine.workspace) is None:
        print(
            "note: no engine runs on this workspace; scheduled steps apply while `opsconsole engine` "
            "or the console runs",
            file=sys.stderr,
        )


def cmd_engine(args: argparse.Namespace) -> int:
    from .engine.runner import EngineBusy, Runner

    engine = _engine(args)
    runner = Runner(engine, args.interval)
    try:
        runner.acquire()  # refused before anything says "running"
    except EngineBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    engine.engage_from_environment()
    # What the runner keeps retrying (flag files on a full disk, journal lines set aside) is said.
    engine.bus.subscribe(
        lambda e: (
            print(f"warning: {e.data.get('message', '')}", file=sys.stderr, flush=True)
            if e.kind == "warning"
            else None
        )
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        print(f"engine running on {engine.workspace} every {runner.interval:g}s (Ctrl-C stops)", flush=True)
        engine.bus.subscribe(_print_engine_state)
        await runner.run(stop)

    asyncio.run(run())
    return EXIT_OK


def _print_engine_state(event: Any) -> None:
    """The headless engine's log of its own state: a busy or failing store, and when it is back."""
    if event.kind != "engine" or event.data.get("state") not in ("running", "store_busy", "store_error"):
        return
    from .engine.health import clock_text

    error = f": {event.data['error']}" if event.data.get("error") else ""
    print(f"{clock_text(event.data['since'])} engine {event.data['state']}{error}", flush=True)


def cmd_report(args: argparse.Namespace) -> int:
    from .engine.report import render

    print(render(_engine(args, reading=True).report(args.id), args.format), end="")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    engine = _engine(args, reading=True)
    if args.verify:
        res = engine.verify_audit()
        if res.ok:
            head = res.head or "none (no events)"
            anchored = f", anchored at event {res.anchored}" if res.anchored is not None else ""
            print(f"audit chain intact: {res.checked} events verified, head {head}{anchored}")
            if res.anchored is None and res.checked:
                print(
                    "warning: no audit anchor in the workspace: a cut-off tail would not show",
                    file=sys.stderr,
                )
            return EXIT_OK
        at = f" at event {res.first_broken}" if res.first_broken is not None else ""
        print(visible(f"audit chain BROKEN{at}: {res.problem}"), file=sys.stderr)
        return EXIT_REFUSED
    events = engine.audit_events()
    events = events[-args.limit :] if args.limit else events
    if args.json:
        _out(
            [
                {
                    "seq": e.seq,
                    "at": e.at,
                    "actor": e.actor,
                    "origin": e.origin,
                    "action": e.action,
                    "target": e.target,
                    "data": e.data,
                    "hash": e.hash,
                }
                for e in events
            ]
        )
        return EXIT_OK
    from .engine.report import iso

    for e in events:
        print(
            visible(
                f"{e.seq:>5} {iso(e.at)} {e.actor}@{e.origin} {e.action} {e.target} {json.dumps(e.data, default=str)[:160]}"
            )
        )
    return EXIT_OK


def cmd_console(args: argparse.Namespace) -> int:
    from .tui.run import run_console

    return run_console(lambda: _engine(args), theme=args.theme, environment=args.env)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.run import run_demo

    return run_demo(args)


HANDLERS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("config", "check"): cmd_config_check,
    ("status", None): cmd_status,
    ("rollout", "start"): cmd_rollout_start,
    ("rollout", "tick"): cmd_rollout_tick,
    ("gates", "check"): cmd_gates_check,
    ("kill", None): cmd_kill,
    ("all-clear", None): cmd_all_clear,
    ("flags", "list"): cmd_flags_list,
    ("flags", "set"): cmd_flags_set,
    ("flags", "history"): cmd_flags_history,
    ("flags", "schedule"): cmd_flags_schedule,
    ("flags", "schedules"): cmd_flags_schedules,
    ("flags", "cancel"): cmd_flags_cancel,
    ("flags", "eval"): cmd_flags_eval,
    ("engine", None): cmd_engine,
    ("report", None): cmd_report,
    ("audit", None): cmd_audit,
    ("demo", None): cmd_demo,
    ("console", None): cmd_console,
    **{
        ("rollout", k): _rollout_command(k)
        for k in ("promote", "approve", "pause", "resume", "abort", "rollback")
    },
}


if __name__ == "__main__":
    raise SystemExit(main())
