"""`opsconsole deploy SERVICE --image TAG [--strategy S] [--json]`: the seed 003 pipeline.

Exit codes are the seed's, not the other commands': 0 deployed and healthy; 1 a test command failed;
2 a build command failed (argparse's own usage errors are 2 as well); 3 the deploy failed: nothing
was changed (unknown service, no Docker engine, no such image, backup failed, not permitted), or the
rollback failed too; 4 the new version failed its health check or smoke test and the previous one
runs again (tagged `:rollback`)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from ..textsafe import visible
from .common import _out

EXIT_DEPLOY_FAILED = 3


def cmd_deploy(args: argparse.Namespace) -> int:
    from ..engine import (
        ConfigError,
        Forbidden,
        StoreError,
        deploy_service,
        open_engine,
        redact_text,
        wait_for_notifications,
    )

    try:
        engine = open_engine(args.config, args.workspace, read_only=getattr(args, "read_only", False))
    except (ConfigError, StoreError):
        raise  # the usual messages and codes (2, 5): nothing was tried
    try:
        engine.authz.require(engine.actor, "deploy.run")
        report = deploy_service(
            engine.config, engine.workspace, args.service, args.image, strategy=args.strategy, engine=engine
        )
    except (ValueError, Forbidden) as exc:
        return _refused(args, str(redact_text(str(exc))))
    finally:
        wait_for_notifications()  # bounded; what is not sent stays in the outbox for the engine
        engine.close()
    if args.json:
        _out(report.to_dict())
    else:
        _text(report)
    return int(report.code)


def _refused(args: argparse.Namespace, message: str) -> int:
    if args.json:
        _out(
            {
                "service": args.service,
                "outcome": "deploy_failed",
                "exit_code": EXIT_DEPLOY_FAILED,
                "message": message,
            }
        )
    else:
        print(visible(f"deploy failed: {message}"), file=sys.stderr)
    return EXIT_DEPLOY_FAILED


def _text(report: Any) -> None:
    when = datetime.fromtimestamp(report.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(visible(f"deploy {report.service} -> {report.image} ({report.strategy}) at {when}"))
    if report.resumed:
        print(visible(f"  resumed: {report.resumed}"))
    for step in report.steps:
        mark = "ok  " if step.ok else "FAIL"
        print(visible(f"  {mark} {step.name:<16} {step.seconds:7.2f}s  {step.detail}"))
    if report.rollback_image:
        print(visible(f"  rollback image: {report.rollback_image} ({(report.previous_image or '')[:19]})"))
    if report.containers:
        print(visible(f"  running: {', '.join(report.containers)}"))
    outcome = report.outcome.name.lower().replace("_", " ")
    line = (
        f"{outcome} (exit {report.code}) in {report.finished_at - report.started_at:.1f}s: {report.message}"
    )
    print(visible(line), file=sys.stdout if report.code == 0 else sys.stderr)
