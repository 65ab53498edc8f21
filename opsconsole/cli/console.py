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
    from ..engine import DEFAULT_WORKSPACE
    from ..tui.run import run_console

    ws = Path(args.workspace or DEFAULT_WORKSPACE).absolute()
    return run_console(
        lambda: _engine(args),
        theme=args.theme,
        environment=args.env,
        look=lambda: _first_look(args.config, ws),
        theme_cache=ws / THEME_CACHE,
    )


THEME_CACHE = "console-themes.json"
"""The validated theme files, cached in the workspace for the console's next start (tui/themes.py)."""


def _first_look(config: str | None, ws: Path) -> FirstLook | None:
    """The rollouts as the store holds them, for the console's first frame (engine/firstlook.py)."""
    from ..engine import config_path, read_first_look

    return read_first_look(config_path(config, ws), ws)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo

    return run_demo(args)
