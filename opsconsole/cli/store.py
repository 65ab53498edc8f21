"""`opsconsole store migrate` and `opsconsole store copy`: the state store's schema and moving a
workspace's history to another store (SQLite to PostgreSQL for a team). URLs are shown redacted."""

from __future__ import annotations

import argparse
import sys

from ..textsafe import visible
from .common import EXIT_FORBIDDEN, EXIT_OK, _out


def _refuse_read_only(args: argparse.Namespace, what: str) -> bool:
    if getattr(args, "read_only", False):
        print(f"not permitted: --read-only: `opsconsole store {what}` writes to a store", file=sys.stderr)
        return True
    return False


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from ..engine import load, migrate_store

    if _refuse_read_only(args, "migrate"):
        return EXIT_FORBIDDEN
    url, password_env = args.url, args.password_env
    if url is None:
        cfg, _ = load(args.config, args.workspace)
        url, password_env = cfg.store, password_env or cfg.store_password_env
    report = migrate_store(url, password_env=password_env)
    if args.json:
        _out({"store": report.where, "version": report.version, "applied": report.applied})
        return EXIT_OK
    if report.applied:
        applied = ", ".join(str(v) for v in report.applied)
        print(visible(f"{report.where}: applied migrations {applied}; schema at version {report.version}"))
    else:
        print(visible(f"{report.where}: schema already at version {report.version}; nothing to apply"))
    return EXIT_OK


def cmd_store_copy(args: argparse.Namespace) -> int:
    from ..engine import copy_store

    if _refuse_read_only(args, "copy"):
        return EXIT_FORBIDDEN
    report = copy_store(
        args.source,
        args.destination,
        source_password_env=args.from_password_env,
        destination_password_env=args.to_password_env,
    )
    if args.json:
        _out(
            {
                "from": report.source,
                "to": report.destination,
                "rows": report.rows,
                "audit_events": report.audit_events,
                "audit_head": report.audit_head,
            }
        )
        return EXIT_OK
    total = sum(report.rows.values())
    print(visible(f"copied {total} rows from {report.source} to {report.destination}"))
    for table, n in report.rows.items():
        print(visible(f"  {table:<16} {n:>8}"))
    head = report.audit_head or "none (no events)"
    print(visible(f"audit chain verified on the copy: {report.audit_events} events, head {head}"))
    return EXIT_OK


def cmd_store_grant(args: argparse.Namespace) -> int:
    from ..engine import grant_store, load

    if not args.dry_run and _refuse_read_only(args, "grant"):
        return EXIT_FORBIDDEN
    url, password_env = args.url, args.password_env
    if url is None:
        cfg, _ = load(args.config, args.workspace)
        url, password_env = cfg.store, password_env or cfg.store_password_env
    report = grant_store(url, args.login, password_env=password_env, dry_run=args.dry_run)
    if args.json:
        _out(
            {
                "store": report.store,
                "login": report.login,
                "applied": not args.dry_run,
                "sql": report.statements,
            }
        )
        return EXIT_OK
    if args.dry_run:
        print("\n".join(f"{s};" for s in report.statements))
    else:
        print(
            visible(
                f"{report.store}: {report.login} has the console's grants ({len(report.statements)} statements)"
            )
        )
    return EXIT_OK
