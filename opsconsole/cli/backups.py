"""Backup commands: run, list, verify, restore, prune.

Exit codes as everywhere: 0 done, 1 refused or the backup/verification failed (the record says why),
2 bad input, 4 not permitted, 5 store trouble.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..textsafe import visible
from .common import EXIT_OK, EXIT_REFUSED, _engine, _out


def cmd_backup_run(args: argparse.Namespace) -> int:
    engine = _engine(args)
    run = engine.run_backup(_target(engine, args.target), "manual", args.reason or "")
    return _print_run(run, args, ok_status="ok")


def cmd_backup_verify(args: argparse.Namespace) -> int:
    engine = _engine(args)
    run = engine.verify_backup(_target(engine, args.target), args.run)
    return _print_run(run, args, ok_status="verified")


def cmd_backup_list(args: argparse.Namespace) -> int:
    engine = _engine(args, reading=True)
    target = _target(engine, args.target, required=False)
    statuses = engine.backup_status(target)
    runs = engine.backups(target, args.limit)
    if args.json:
        _out(
            {
                "targets": {
                    name: {"state": str(s.state), "why": s.why, "newest": s.newest.id if s.newest else None}
                    for name, s in statuses.items()
                },
                "runs": [r.doc() for r in runs],
            }
        )
        return EXIT_OK
    if not statuses:
        print("no backup targets: the configuration has no backups: section")
        return EXIT_OK
    width = max(len(n) for n in statuses)
    for name, s in statuses.items():
        print(visible(f"{name:<{width}}  {str(s.state).upper():<10} {s.why}"))
    if runs:
        print()
        print(f"{'ID':<40} {'STATUS':<13} {'TRIGGER':<14} {'AGE':>6} {'SIZE':>9} {'TOOK':>6}  VERIFIED")
    now = engine.clock()
    for r in runs:
        took = "-" if r.duration is None else f"{r.duration:.1f}s"
        verified = r.verify_result if r.verified_at else "-"
        if r.status in ("failed", "verify_failed"):
            verified = f"{r.error_kind}: {r.reason}"
        print(
            visible(
                f"{r.id:<40} {r.status:<13} {r.trigger:<14} {_age(now - r.started_at):>6} "
                f"{_size(r.size):>9} {took:>6}  {verified}"
            )
        )
    return EXIT_OK


def cmd_backup_restore(args: argparse.Namespace) -> int:
    engine = _engine(args)
    result = engine.restore_backup(
        _target(engine, args.target),
        args.run,
        into=args.into,
        overwrite=args.overwrite,
        confirm=args.confirm or "",
        reason=args.reason or "",
    )
    if args.json:
        _out(
            {
                "target": result.target,
                "run": result.run_id,
                "into": result.into,
                "overwrite": result.overwrite,
                "safety_backup": result.safety_backup,
                "notes": list(result.notes),
            }
        )
        return EXIT_OK
    where = "over the originals" if result.overwrite else f"into {result.into}"
    print(visible(f"restored {result.run_id} {where}"))
    if result.safety_backup:
        print(visible(f"safety backup taken first: {result.safety_backup}"))
    for note in result.notes:
        print(visible(f"note: {note}"))
    return EXIT_OK


def cmd_backup_prune(args: argparse.Namespace) -> int:
    engine = _engine(args, reading=args.dry_run)
    decisions = engine.prune_backups(_target(engine, args.target), dry_run=args.dry_run)
    if args.json:
        _out(
            {
                "dry_run": args.dry_run,
                "decisions": [{"run": d.run.id, "keep": d.keep, "why": d.why} for d in decisions],
            }
        )
        return EXIT_OK
    if not decisions:
        print("nothing stored")
    verb = "would delete" if args.dry_run else "deleted"
    for d in decisions:
        print(visible(f"{'keep' if d.keep else verb:<12} {d.run.id}  {d.why}"))
    return EXIT_OK


def _print_run(run: Any, args: argparse.Namespace, ok_status: str) -> int:
    if args.json:
        _out(run.doc())
    else:
        line = f"{run.id}  {run.status}"
        if run.status == ok_status:
            line += f"  {_size(run.size)}  sha256 {run.sha256[:12]}"
            if run.verify_result and ok_status == "verified":
                line += f"  ({run.verify_result})"
            print(visible(line))
            for loc in run.locations:
                print(visible(f"  {loc}"))
        else:
            print(visible(f"{line}  {run.error_kind}: {run.reason}"))
    return EXIT_OK if run.status == ok_status else EXIT_REFUSED


def _target(engine: Any, name: str | None, required: bool = True) -> str | None:
    configured = sorted(engine.config.backups)
    if name is not None:
        if name not in configured:
            where = ", ".join(configured) or "none: the configuration has no backups: section"
            raise ValueError(f"no backup target {name!r} (configured: {where})")
        return name
    if not required:
        return None
    if len(configured) == 1:
        return str(configured[0])
    if not configured:
        raise ValueError("the configuration has no backups: section")
    raise ValueError(f"several backup targets; name one ({', '.join(configured)})")


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= 2 * size:
            return f"{s // size}{unit}"
    return f"{s}s"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


__all__ = ["cmd_backup_list", "cmd_backup_prune", "cmd_backup_restore", "cmd_backup_run", "cmd_backup_verify"]
