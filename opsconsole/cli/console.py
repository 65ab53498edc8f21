"""The console and the embedded demo."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    _engine,
)

if TYPE_CHECKING:
    from ..engine import FirstLook


def cmd_console(args: argparse.Namespace) -> int:
    from ..tui.run import run_console

    return run_console(
        lambda: _engine(args), theme=args.theme, environment=args.env, look=lambda: _first_look(args)
    )


def _first_look(args: argparse.Namespace) -> FirstLook | None:
    """The rollouts as the store holds them, for the console's first frame (engine/firstlook.py)."""
    from ..engine import DEFAULT_WORKSPACE, config_path, read_first_look

    ws = Path(args.workspace or DEFAULT_WORKSPACE).absolute()
    return read_first_look(config_path(args.config, ws), ws)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo

    return run_demo(args)
