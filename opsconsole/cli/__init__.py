"""Command line: parse arguments, call the engine (or the demo), print, exit with a meaningful code.

Exit codes (also in README): 0 ok; 1 refused by the rules, or a gate fails; 2 bad input (config
errors, unknown names, bad arguments); 3 pending or unknown (gates not decidable yet, timeouts);
4 not permitted (role or read-only); 5 the store is unavailable or kept changing.

This module stays small because it is what `opsconsole` and `python -m opsconsole` import first:
`opsconsole kill` makes the flag files safe (fastkill.py) before argparse, the command modules or the
engine's model are imported, and the console's plain command lines (fastconsole.py) open it without
building every command's parser. Everything else is in dispatch.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # not typing's: see engine/__init__.py

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "EXIT_FORBIDDEN",
    "EXIT_INPUT",
    "EXIT_OK",
    "EXIT_PENDING",
    "EXIT_REFUSED",
    "EXIT_STORE",
    "HANDLERS",
    "build_parser",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from .fastkill import kill_first

    safe_files = kill_first(args)
    if safe_files is None:
        from .fastconsole import parse

        console = parse(args)
        if console is not None:
            return _console(console)
    from .dispatch import main as dispatch

    return dispatch(args, safe_files)


def _console(opts: dict[str, Any]) -> int:
    """The console from fastconsole.py's reading of the command line: what dispatch.py would run for
    it, without its parser; an error is reported there, with its exit code."""
    import argparse

    from .console import cmd_console

    args = argparse.Namespace(command="console", sub=None, json=False, **opts)
    try:
        return cmd_console(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - classified there; anything else is re-raised
        from .dispatch import _report

        return _report(exc)


def __getattr__(name: str) -> Any:
    """The parser, the handlers and the exit codes, from dispatch.py when first asked for."""
    if name == "dispatch":  # asked while `from . import dispatch` imports it: not one of its names
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import dispatch

    try:
        return getattr(dispatch, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
