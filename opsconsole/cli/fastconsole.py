"""`opsconsole [--workspace W] [console] ...`'s way past argparse.

The console's first frame is judged against a bare Textual app, and building the parser of every
command (and importing every command's module to reach it) costs a few tens of ms before Textual
even starts. So the plain spellings of the console's command line (`[--config C] [--workspace W]
[--read-only] [console] [--config C] [--workspace W] [--read-only] [--theme T] [--env E]`, values
given as `--opt value` or `--opt=value`) are read here. Anything this parser is not sure argparse
reads the same way (abbreviations, `--json`, `-h`, a value that starts with a dash, a word it does
not know) returns None and goes the whole way through dispatch.py, which also reports its errors.
"""

from __future__ import annotations

from collections.abc import Sequence

_GLOBAL_VALUE = ("--config", "--workspace")
_GLOBAL_FLAG = ("--read-only",)
_CONSOLE_VALUE = (*_GLOBAL_VALUE, "--theme", "--env")


def parse(argv: Sequence[str]) -> dict[str, str | bool | None] | None:
    """The console's options (config, workspace, read_only, theme, env) for a plain console command
    line, else None."""
    opts: dict[str, str | bool | None] = {
        "config": None,
        "workspace": None,
        "read_only": False,
        "theme": None,
        "env": None,
    }
    command = False  # past the (given or implied) `console` word: the console's own options apply
    i = 0
    while i < len(argv):
        word = argv[i]
        name, eq, value = word.partition("=")
        if word == "console" and not command:
            command = True
        elif word in _GLOBAL_FLAG and not eq:
            opts["read_only"] = True
        elif name in (_CONSOLE_VALUE if command else _GLOBAL_VALUE) or name in _CONSOLE_VALUE[2:]:
            # --theme / --env before any command word: argparse sees the implied `console` there
            command = command or name in _CONSOLE_VALUE[2:]
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    return None
                i += 1
                value = argv[i]
            elif value.startswith("-"):
                return None
            opts[name[2:].replace("-", "_")] = value  # the last one wins, as in argparse
        else:
            return None
        i += 1
    return opts
