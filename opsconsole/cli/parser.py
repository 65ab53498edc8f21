"""The argument parser: every command, its arguments and its help."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    RAMP_STEPS,
)

GLOBAL_DEFAULTS: dict[str, Any] = {"config": None, "workspace": None, "read_only": False, "json": False}
"""Options that go before or after the command (as in git and kubectl). Their parsers default to
SUPPRESS: a command's parser would otherwise overwrite what was given before the command with its
own default; `main` fills in these defaults once both have parsed."""

GLOBAL_WITH_VALUE = frozenset({"--config", "--workspace"})
GLOBAL_FLAGS = frozenset({"--read-only", "--json"})


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="main configuration file (default: workspace's opsconsole.yaml, else the shipped default)",
    )
    p.add_argument("--workspace", default=argparse.SUPPRESS, help="state directory (default: ./.opsconsole)")
    p.add_argument(
        "--read-only",
        action="store_true",
        default=argparse.SUPPRESS,
        help="refuse every action that changes state",
    )


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(json_output=True)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _common(common)
    parser = argparse.ArgumentParser(
        prog="opsconsole", description="Operations console for safe phased rollouts."
    )
    _common(parser)
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON (commands that can)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    cfg = sub.add_parser("config", help="configuration").add_subparsers(dest="sub", required=True)
    cfg.add_parser("check", parents=[common], help="validate configuration; exit 2 with file:line errors")

    st = sub.add_parser("status", parents=[common], help="where every rollout stands")
    _json(st)
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

    src = sub.add_parser("sources", help="metric sources and flag targets").add_subparsers(
        dest="sub", required=True
    )
    sc = src.add_parser(
        "check",
        parents=[common],
        help="reach every configured source and target once: ok, latency, error (exit 0 all ok, 1 not)",
    )
    sc.add_argument("--env", default=None, help="one environment (default: all)")
    _json(sc)

    dp = sub.add_parser(
        "deploy",
        parents=[common],
        help="deploy a Docker service: tests, build, backup, strategy, rollback (exit 0 ok, 1 tests failed, "
        "2 build failed, 3 deploy failed, 4 rolled back)",
    )
    dp.add_argument("service", help="a service of the services: section")
    dp.add_argument("--image", required=True, help="the tag to deploy (or a full image reference)")
    dp.add_argument(
        "--strategy", default=None, help="recreate, rolling or blue_green (default: the service's strategy)"
    )
    _json(dp)

    gates = sub.add_parser("gates", help="gate checks").add_subparsers(dest="sub", required=True)
    gc = gates.add_parser(
        "check",
        parents=[common],
        help="evaluate a rollout's current gates now (0 pass, 1 fail, 3 pending/unknown)",
    )
    gc.add_argument("id")
    _json(gc)

    k = sub.add_parser("kill", parents=[common], help="pull the emergency kill switch")
    k.add_argument("--reason", required=True)
    k.set_defaults(json_output=True)  # it always prints JSON
    ac = sub.add_parser("all-clear", parents=[common], help="leave the emergency (approver)")
    ac.add_argument("--reason", required=True)

    fl = sub.add_parser("flags", help="feature flags").add_subparsers(dest="sub", required=True)
    fls = fl.add_parser("list", parents=[common], help="flags with value and the rule that decided it")
    fls.add_argument("--env", help="one environment (default: all with a flag target)")
    _json(fls)
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
    _json(fev)
    _flag_schedule_parsers(fl, common)

    _improvement_parsers(sub, common)
    _backup_parsers(sub, common)
    _alarm_parsers(sub, common)

    eng = sub.add_parser("engine", parents=[common], help="run the background runner headless")
    eng.add_argument("--interval", type=float, default=None, help="seconds between ticks (default: config)")
    eng.add_argument(
        "--check",
        action="store_true",
        help="health probe: exit 0 when an engine holds leadership and the store answers, else 1",
    )

    rep = sub.add_parser("report", parents=[common], help="a rollout's timeline for an incident record")
    rep.add_argument("id")
    rep.add_argument("--format", choices=("text", "json", "md"), default="text")

    au = sub.add_parser("audit", parents=[common], help="the audit log")
    au.add_argument("--verify", action="store_true", help="check the hash chain; non-zero when broken")
    au.add_argument("--limit", type=int, default=50)
    _json(au)

    _store_parsers(sub, common)

    con = sub.add_parser("console", parents=[common], help="open the console (the default command)")
    _console_options(con)

    demo = sub.add_parser("demo", parents=[common], help="run the embedded demo environment")
    _console_options(demo)
    demo.add_argument("--headless", action="store_true", help="no screen: run the demo rollout, print JSON")
    demo.add_argument("--auto-approve", action="store_true", help="approve as the actor 'demo' (demo only)")
    demo.add_argument(
        "--improvements",
        action="store_true",
        help="headless: run the improvement queue against the demo agent instead of the rollout",
    )
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
    _json(fhi)
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
    _json(fsc)
    fss = fl.add_parser(
        "schedules", parents=[common], help="scheduled flag changes and the time to their next step"
    )
    fss.add_argument("--env", default=None)
    fss.add_argument("--all", action="store_true", help="include done, canceled and stopped schedules")
    _json(fss)
    fca = fl.add_parser("cancel", parents=[common], help="cancel a pending flag schedule")
    fca.add_argument("id", type=_schedule_id, help="the schedule's number (from `flags schedules`)")
    fca.add_argument("--reason", required=True)


def _improvement_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    imp = sub.add_parser("improvements", help="the self-building agent's improvement queue").add_subparsers(
        dest="sub", required=True
    )
    env = {"default": None, "help": "environment (default: the only one with an improvement queue)"}
    il = imp.add_parser("list", parents=[common], help="the queue: status, quality, risk, tenant, title")
    il.add_argument("--env", **env)
    il.add_argument("--status", action="append", help="only this status (repeatable)")
    _json(il)
    ish = imp.add_parser("show", parents=[common], help="one improvement: prediction, review, evidence")
    ish.add_argument("id")
    ish.add_argument("--env", **env)
    _json(ish)
    for name, text in (
        ("approve", "approve proposals (approver; --override: admin)"),
        ("reject", "reject proposals"),
    ):
        c = imp.add_parser(name, parents=[common], help=text)
        c.add_argument("ids", nargs="+", metavar="ID")
        c.add_argument("--env", **env)
        c.add_argument("--reason", required=True)
        if name == "approve":
            c.add_argument(
                "--override",
                action="store_true",
                help="admin: approve under the quality threshold or over the risk tolerance",
            )
        _json(c)
    rb = imp.add_parser("rollback", parents=[common], help="roll improvements back through the agent")
    rb.add_argument("ids", nargs="*", metavar="ID")
    rb.add_argument(
        "--recent", type=float, metavar="HOURS", help="every improvement deployed in the last HOURS"
    )
    rb.add_argument("--env", **env)
    rb.add_argument("--reason", required=True)
    _json(rb)
    sy = imp.add_parser("sync", parents=[common], help="ask the agent (or read the file) for proposals now")
    sy.add_argument("--env", **env)
    _json(sy)
    ra = imp.add_parser(
        "resume-autonomous",
        parents=[common],
        help="admin: let autonomous mode run again after the kill switch suspended it",
    )
    ra.add_argument("--env", **env)
    ra.add_argument("--reason", required=True)
    stt = imp.add_parser(
        "stats", parents=[common], help="proposed, deployed, kept, rolled back, rollback rate"
    )
    stt.add_argument("--env", **env)
    stt.add_argument("--tenant", default=None)
    _json(stt)


def _backup_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    bk = sub.add_parser("backup", help="backups: run, list, verify, restore, prune").add_subparsers(
        dest="sub", required=True
    )
    tgt = {"nargs": "?", "default": None, "help": "backup target (default: the only one configured)"}
    run = bk.add_parser("run", parents=[common], help="take a backup now (exit 1 if it failed)")
    run.add_argument("target", **tgt)
    run.add_argument("--reason", default="")
    _json(run)
    ls = bk.add_parser("list", parents=[common], help="restorability per target, then the history")
    ls.add_argument("target", nargs="?", default=None, help="one target (default: all)")
    ls.add_argument("--limit", type=int, default=None, help="at most this many runs")
    _json(ls)
    ve = bk.add_parser("verify", parents=[common], help="check a stored copy (exit 1 if it fails)")
    ve.add_argument("target", **tgt)
    ve.add_argument("--run", default=None, help="run id (default: the newest with a stored copy)")
    _json(ve)
    rs = bk.add_parser("restore", parents=[common], help="restore into a new place, or over the originals")
    rs.add_argument("target", **tgt)
    rs.add_argument("--run", default=None, help="run id (default: the newest good one)")
    rs.add_argument("--into", default=None, help="files: directory; postgres: new database name")
    rs.add_argument(
        "--overwrite",
        action="store_true",
        help="approver: restore over the originals (takes a safety backup first; needs --confirm)",
    )
    rs.add_argument("--confirm", default=None, metavar="TARGET", help="the target's name, typed back")
    rs.add_argument("--reason", default="")
    _json(rs)
    pr = bk.add_parser("prune", parents=[common], help="apply retention (--dry-run: only say what would go)")
    pr.add_argument("target", **tgt)
    pr.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted and why; delete nothing"
    )
    _json(pr)


def _alarm_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    al = sub.add_parser("alarms", help="Alertmanager alerts and silences: list, silence, unsilence")
    alp = al.add_subparsers(dest="sub", required=True)
    ls = alp.add_parser("list", parents=[common], help="alerts (active, silenced, inhibited) and silences")
    ls.add_argument("--env", default=None, help="one environment (default: all with an alarm source)")
    _json(ls)
    si = alp.add_parser("silence", parents=[common], help="silence matching alerts for a while (operator)")
    si.add_argument("alertname", nargs="?", default=None, help="the alert's name (alertname label)")
    si.add_argument(
        "--match", action="append", metavar="LABEL=VALUE", help="another label the alerts must carry"
    )
    si.add_argument("--env", default=None, help="environment (default: the only one with an alarm source)")
    si.add_argument("--duration", required=True, help="how long, e.g. 30m, 2h")
    si.add_argument("--reason", required=True)
    _json(si)
    un = alp.add_parser("unsilence", parents=[common], help="expire a silence now (operator)")
    un.add_argument("id", help="the silence id")
    un.add_argument("--env", default=None, help="environment (default: the only one with an alarm source)")
    un.add_argument("--reason", required=True)


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


def _store_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    store = sub.add_parser("store", help="the state store: schema migrations, copying").add_subparsers(
        dest="sub", required=True
    )
    mig = store.add_parser(
        "migrate",
        parents=[common],
        help="bring the store's schema up to date (the configured store, or --url)",
    )
    mig.add_argument("--url", default=None, help="a store URL (default: the configuration's `store`)")
    mig.add_argument(
        "--password-env",
        default=None,
        help="environment variable with a PostgreSQL password (else PGPASSWORD/pgpass)",
    )
    _json(mig)
    cp = store.add_parser(
        "copy",
        parents=[common],
        help="copy a store's whole history into an empty one (e.g. SQLite to PostgreSQL); the audit chain is verified",
    )
    cp.add_argument(
        "--from", dest="source", required=True, help="sqlite:///path/state.db or postgresql://user@host/db"
    )
    cp.add_argument("--to", dest="destination", required=True, help="an empty store (created if new)")
    cp.add_argument("--from-password-env", default=None, help="environment variable with --from's password")
    cp.add_argument("--to-password-env", default=None, help="environment variable with --to's password")
    _json(cp)
    gr = store.add_parser(
        "grant",
        parents=[common],
        help="give a PostgreSQL login the least a console needs (no DDL, no DELETE, audit append-only)",
    )
    gr.add_argument("login", help="an existing login (CREATE ROLE name LOGIN PASSWORD ...), not a superuser")
    gr.add_argument(
        "--url", default=None, help="the store, as its owner (default: the configuration's `store`)"
    )
    gr.add_argument(
        "--password-env",
        default=None,
        help="environment variable with the owner's password (else PGPASSWORD/pgpass)",
    )
    gr.add_argument("--print", dest="dry_run", action="store_true", help="print the SQL; change nothing")
    _json(gr)
