"""Improvement queue commands: list, show, approve, reject, sync, rollback, stats.

Agent text (titles, descriptions, reasons the agent gave) is untrusted: every line printed passes
`visible()` (the CLI's output stream escapes too), and titles are truncated in the table.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..textsafe import visible
from .common import EXIT_OK, EXIT_REFUSED, _engine, _out

TITLE_WIDTH = 48


def cmd_improvements_list(args: argparse.Namespace) -> int:
    engine = _engine(args, reading=True)
    env = _environment(engine, args.env)
    items = engine.improvements(env)
    if args.status:
        items = [i for i in items if str(i.status) in args.status]
    mode = engine.improvement_mode(env)
    if args.json:
        _out({"environment": env, "mode": _mode_doc(mode), "improvements": [_item_doc(i) for i in items]})
        return EXIT_OK
    for line in _mode_line(mode).splitlines():
        print(visible(line))
    if not items:
        print("no improvements" + (f" with status {', '.join(args.status)}" if args.status else ""))
    id_width = min(max([len("ID"), *(len(i.id) for i in items)]), 32)
    tenant_width = min(max([len("TENANT"), *(len(i.proposal.tenant or "-") for i in items)]), 24)
    if items:
        print(
            f"{'ID':<{id_width}} {'STATUS':<11} {'QUALITY':>7} {'RISK':>5} {'TENANT':<{tenant_width}} TITLE"
        )
    for i in items:
        p = i.proposal
        print(
            visible(
                f"{_cut(p.id, id_width):<{id_width}} {i.status:<11} {p.quality_score:>7.2f} {p.risk:>5.2f} "
                f"{_cut(p.tenant or '-', tenant_width):<{tenant_width}} {_cut(visible(p.title), TITLE_WIDTH)}"
            )
        )
    return EXIT_OK


def cmd_improvements_show(args: argparse.Namespace) -> int:
    engine = _engine(args, reading=True)
    env = _environment(engine, args.env)
    item = engine.improvement(env, args.id)
    problems = engine.review_problems(item)
    if args.json:
        _out({**_item_doc(item), "review_problems": problems})
        return EXIT_OK
    doc = _item_doc(item)
    p = item.proposal
    print(visible(f"{p.id}  {item.status}  ({env}, from the {item.source})"))
    print(visible(f"title: {p.title}"))
    for key in ("component", "tenant", "kind"):
        print(visible(f"{key}: {doc[key] or '-'}"))
    change = f"{p.impact.expected_change * 100:+.1f}%"
    print(
        visible(
            f"predicted: {item.metric or p.impact.metric or '(default metric)'} {change} ({p.impact.better} is better)"
        )
    )
    print(f"quality: {p.quality_score:.2f}   risk: {p.risk:.2f}")
    if problems:
        print(visible("needs an admin override: " + "; ".join(problems)))
    for key in ("reviewer", "reason", "baseline", "observed", "evidence", "error"):
        if doc[key] not in ("", None):
            print(visible(f"{key}: {doc[key]}"))
    for key in ("proposed", "decided", "deployed", "monitor_until", "finished"):
        if doc[key]:
            print(f"{key}: {doc[key]}")
    print("description:")
    for line in (p.description or "(none)").splitlines() or [""]:
        print(visible(f"  {line}"))
    return EXIT_OK


def cmd_improvements_approve(args: argparse.Namespace) -> int:
    engine = _engine(args)
    env = _environment(engine, args.env)
    done = engine.approve_improvements(env, args.ids, args.reason, override=args.override)
    return _print_done(done, "approved", args)


def cmd_improvements_reject(args: argparse.Namespace) -> int:
    engine = _engine(args)
    env = _environment(engine, args.env)
    done = engine.reject_improvements(env, args.ids, args.reason)
    return _print_done(done, "rejected", args)


def cmd_improvements_rollback(args: argparse.Namespace) -> int:
    if bool(args.ids) == (args.recent is not None):
        raise ValueError(
            "name the improvements to roll back, or --recent HOURS for all deployed in that time"
        )
    engine = _engine(args)
    env = _environment(engine, args.env)
    if args.recent is not None:
        done = engine.rollback_recent(env, args.recent, args.reason)
    else:
        done = engine.rollback_improvements(env, args.ids, args.reason)
    code = _print_done(done, "rollback", args)
    # A rollback the agent refused or could not do leaves the item failed, never rolled back.
    failed = [i for i in done if str(i.status) != "rolled_back"]
    return EXIT_REFUSED if failed else code


def cmd_improvements_sync(args: argparse.Namespace) -> int:
    engine = _engine(args)
    env = _environment(engine, args.env) if args.env or len(engine.config.improvements) == 1 else None
    result = engine.sync_improvements(env)
    if args.json:
        _out(_plain(result))
    else:
        where = ", ".join(result.environments) or "no environment"
        print(
            visible(
                f"synced {where} in {result.seconds:.2f}s: {result.new} new, {result.updated} updated, "
                f"{result.unchanged} unchanged"
            )
        )
        for error in result.errors:
            print(visible(f"error: {error}"), file=sys.stderr)
    return EXIT_REFUSED if result.errors else EXIT_OK


def cmd_improvements_resume(args: argparse.Namespace) -> int:
    engine = _engine(args)
    env = _environment(engine, args.env)
    engine.resume_autonomous(env, args.reason)
    for line in _mode_line(engine.improvement_mode(env)).splitlines():
        print(visible(line))
    return EXIT_OK


def cmd_improvements_stats(args: argparse.Namespace) -> int:
    engine = _engine(args, reading=True)
    env = _environment(engine, args.env) if args.env or len(engine.config.improvements) == 1 else None
    stats = _plain(engine.improvement_stats(env, args.tenant))
    if args.json:
        _out(stats)
        return EXIT_OK
    for key, value in stats.items():
        print(visible(f"{key}: {'-' if value is None else value}"))
    return EXIT_OK


# ------------------------------------------------------------------------------------ helpers


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _environment(engine: Any, name: str | None) -> str:
    configured = sorted(engine.config.improvements)
    if name is not None:
        if name not in configured:
            where = ", ".join(configured) or "none: the configuration has no improvements: section"
            raise ValueError(f"no improvement queue for environment {name!r} (configured: {where})")
        return name
    if len(configured) == 1:
        return str(configured[0])
    if not configured:
        raise ValueError("the configuration has no improvements: section; nothing to review")
    raise ValueError(
        f"several environments have an improvement queue; name one with --env ({', '.join(configured)})"
    )


def _print_done(done: list[Any], what: str, args: argparse.Namespace) -> int:
    if args.json:
        _out([_item_doc(i) for i in done])
        return EXIT_OK
    for i in done:
        extra = f": {i.evidence or i.error or i.reason}" if (i.evidence or i.error or i.reason) else ""
        print(visible(f"{i.id} {i.status} ({what}){extra}"))
    return EXIT_OK


def _item_doc(i: Any) -> dict[str, Any]:
    from ..engine import iso, proposal_document

    proposal = proposal_document(i.proposal)  # the agent's words, in the protocol's shape
    agent_status = proposal.pop("status", "")
    return {
        "environment": i.environment,
        **proposal,
        "agent_status": agent_status,
        "status": str(i.status),
        "source": i.source,
        "reviewer": i.reviewer,
        "reason": i.reason,
        "override": i.override,
        "metric": i.metric,
        "baseline": i.baseline,
        "observed": i.observed,
        "evidence": i.evidence,
        "error": i.error,
        "proposed": iso(i.proposed_at) if i.proposed_at else None,
        "decided": iso(i.decided_at) if i.decided_at else None,
        "deployed": iso(i.deployed_at) if i.deployed_at else None,
        "monitor_until": iso(i.monitor_until) if i.monitor_until else None,
        "finished": iso(i.finished_at) if i.finished_at else None,
    }


def _mode_doc(mode: Any) -> dict[str, Any]:
    return _plain(mode)


def _mode_line(mode: Any) -> str:
    from ..engine import format_duration

    if mode.autonomous:
        kind = "autonomous"
    elif mode.autonomous_suspended:
        kind = "observation (autonomous suspended by the kill switch)"
    else:
        kind = "observation (nothing deploys without a person)"
    state = f"{'file' if mode.source.startswith('file ') else 'agent'}: {mode.agent_state}"
    parts = [f"[{mode.environment}] {kind}", f"source: {mode.source}", state]
    if mode.paused.paused:
        parts.insert(1, "PAUSED by the kill switch")
    if not mode.self_building:
        parts.insert(1, "self-building off")
    parts.append(f"live {mode.live}/{mode.max_concurrent}")
    if mode.agent_error:
        parts.append(mode.agent_error)
    rules = (
        f"  rules: quality >= {mode.quality_threshold:g}, risk <= {mode.risk_tolerance:g}, "
        f"watched {format_duration(mode.monitoring)}, rolled back over {mode.rollback_threshold * 100:g}% worse "
        f"(from {mode.rules_from})"
    )
    return "  ".join(parts) + "\n" + rules


def _plain(obj: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict (nested dataclasses too)."""
    import dataclasses

    doc = (
        dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else dict(obj)
    )
    return {
        k: (str(v) if not isinstance(v, int | float | str | bool | list | dict | type(None)) else v)
        for k, v in doc.items()
    }
