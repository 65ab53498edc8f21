"""Shared by every command group: exit codes, opening the engine, printing JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_INPUT, EXIT_PENDING, EXIT_FORBIDDEN, EXIT_STORE = 0, 1, 2, 3, 4, 5


RAMP_STEPS = 4


def _engine(args: argparse.Namespace, reading: bool = False, login_warning: bool = True) -> Any:
    """`reading`: the command only reads, so its session is read-only and never takes the store's
    write lock (it answers while another process writes). `login_warning`: say on stderr when the
    store's login is a superuser (`status` says it in its own output instead)."""
    from ..engine import open_engine
    from ..textsafe import visible

    engine = open_engine(args.config, args.workspace, read_only=reading or getattr(args, "read_only", False))
    if login_warning and engine.login_warning:  # a superuser can rewrite anything, audit included
        print(visible(f"warning: {engine.login_warning}"), file=sys.stderr, flush=True)
    for warning in engine.journal_warnings:  # a bad kill-journal line: file:line and why
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return engine


def _out(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))
