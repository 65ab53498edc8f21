"""`opsconsole kill`'s first step, before argparse and the engine's model are imported.

A fresh process has 100 ms from spawn to safe flag files, and the interpreter uses half of it. So for
the plain spellings of the command (`[--config C] [--workspace W] kill --reason R [--config C]
[--workspace W]`, values given as `--opt value` or `--opt=value`) the journal line and the flag files
are written from the cached kill plan (engine/killfast.py), and only then does argparse parse the
same arguments and the command record the kill in the store as usual. Anything this parser is not
sure argparse reads the same way (abbreviations, `--read-only`, `--json`, `-h`, a value that starts
with a dash, anything unknown) goes the whole way, as does a missing or stale kill plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

TYPE_CHECKING = False  # not typing's: see engine/__init__.py

if TYPE_CHECKING:
    from typing import Any

_GLOBAL = ("--config", "--workspace")
_KILL = ("--config", "--workspace", "--reason")


def parse(argv: Sequence[str]) -> dict[str, str] | None:
    """{"--reason": …, "--config"?: …, "--workspace"?: …} for a plain kill command line, else None."""
    opts: dict[str, str] = {}
    command = False
    i = 0
    while i < len(argv):
        word = argv[i]
        name, eq, value = word.partition("=")
        if word == "kill" and not command:
            command = True
        elif name in (_KILL if command else _GLOBAL):
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    return None
                i += 1
                value = argv[i]
            opts[name] = value  # the last one wins, as in argparse
        else:
            return None
        i += 1
    return opts if command and "--reason" in opts else None


def kill_first(argv: Sequence[str]) -> dict[str, Any] | None:
    """The fields of killswitch.SafeFiles when this is a kill the cached plan could make safe (the
    journal line and the flag files are written), else None: nothing was done."""
    opts = parse(argv)
    if opts is None:
        return None
    from ..engine import DEFAULT_WORKSPACE, config_path, engage_from_kill_plan

    ws = Path(opts.get("--workspace") or DEFAULT_WORKSPACE).absolute()  # as cmd_kill says it
    return engage_from_kill_plan(config_path(opts.get("--config"), ws), ws, opts["--reason"])
