"""The console and the embedded demo."""

from __future__ import annotations

import argparse

from .common import (
    _engine,
)


def cmd_console(args: argparse.Namespace) -> int:
    from ..tui.run import run_console

    return run_console(lambda: _engine(args), theme=args.theme, environment=args.env)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo

    return run_demo(args)
