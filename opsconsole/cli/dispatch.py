"""Every command through argparse: parse, call the engine (or the demo), print, exit with a
meaningful code (the codes are listed in cli/__init__.py)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..textsafe import VisibleStream, visible
from .alarms import cmd_alarms_list, cmd_alarms_silence, cmd_alarms_unsilence
from .audit import cmd_audit
from .backups import cmd_backup_list, cmd_backup_prune, cmd_backup_restore, cmd_backup_run, cmd_backup_verify
from .common import EXIT_FORBIDDEN, EXIT_INPUT, EXIT_OK, EXIT_PENDING, EXIT_REFUSED, EXIT_STORE
from .console import cmd_console, cmd_demo
from .deploy import cmd_deploy
from .flags import cmd_flags_eval, cmd_flags_history, cmd_flags_list, cmd_flags_set
from .improvements import (
    cmd_improvements_approve,
    cmd_improvements_list,
    cmd_improvements_reject,
    cmd_improvements_resume,
    cmd_improvements_rollback,
    cmd_improvements_show,
    cmd_improvements_stats,
    cmd_improvements_sync,
)
from .killswitch import cmd_all_clear, cmd_kill
from .parser import GLOBAL_DEFAULTS, GLOBAL_FLAGS, GLOBAL_WITH_VALUE, build_parser
from .rollouts import (
    _rollout_command,
    cmd_config_check,
    cmd_gates_check,
    cmd_report,
    cmd_rollout_start,
    cmd_rollout_tick,
    cmd_status,
)
from .runner import cmd_engine
from .schedules import cmd_flags_cancel, cmd_flags_schedule, cmd_flags_schedules
from .sources import cmd_sources_check
from .store import cmd_store_copy, cmd_store_grant, cmd_store_migrate

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


def main(argv: Sequence[str] | None = None, safe_files: dict[str, Any] | None = None) -> int:
    """`safe_files`: what the kill command's fast path (fastkill.py) already did for this `argv`."""
    argv = _with_command(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if safe_files is not None:
        assert args.command == "kill", argv  # fastkill.parse accepts nothing else
        args.safe_files = safe_files
    if args.json and not getattr(args, "json_output", False):
        command = " ".join(filter(None, (args.command, getattr(args, "sub", None))))
        parser.error(f"--json: `opsconsole {command}` has no JSON output")
    handler = HANDLERS[(args.command, getattr(args, "sub", None))]
    if handler in (cmd_console, cmd_demo):  # the screen draws itself; headless demo prints JSON
        return _guarded(handler, args)
    with _visible_output():
        return _guarded(handler, args)


def _with_command(argv: list[str]) -> list[str]:
    """Without a command the console opens: `console` goes after the global options given before it
    (`opsconsole --workspace W` opens the console on W; `opsconsole --workspace W kill` does not)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in GLOBAL_WITH_VALUE and i + 1 < len(argv):
            i += 2
        elif word in GLOBAL_FLAGS or "=" in word and word.split("=", 1)[0] in GLOBAL_WITH_VALUE:
            i += 1
        else:
            break
    rest = argv[i:]
    if not rest or rest[0].startswith("-") and rest[0] not in ("-h", "--help"):
        return [*argv[:i], "console", *rest]
    return argv


@contextlib.contextmanager
def _visible_output() -> Iterator[None]:
    """Every byte a text command prints passes `visible()`: data from plans, reasons and errors never
    reaches the terminal as control codes, whichever print forgets to escape it."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = VisibleStream(out), VisibleStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def _guarded(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `opsconsole backup list | head`: the reader left; what was done is done, say nothing more
        # (and let the interpreter's final flush of stdout go nowhere instead of failing again).
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - classified below; anything else is re-raised
        return _report(exc)


def _report(exc: Exception) -> int:
    """The exit code and message for an error the engine raises; anything else is a bug: re-raised.
    (Imported here, not at the top: the console's first frame must not wait for the engine.)"""
    from ..engine import (
        AlarmSourceError,
        BackupError,
        ConfigError,
        Conflict,
        FilesBehind,
        Forbidden,
        NotFound,
        Rejected,
        StoreError,
        redact_text,
    )

    def shown(e: object) -> str:  # one line per message: a newline in data cannot forge another
        return visible(redact_text(str(e)))

    if isinstance(exc, ConfigError):
        issues = "\n".join(shown(i) for i in exc.issues)
        print(f"configuration errors:\n{issues}", file=sys.stderr)
        return EXIT_INPUT
    if isinstance(exc, NotFound | ValueError):
        print(f"error: {shown(exc)}", file=sys.stderr)
        return EXIT_INPUT
    if isinstance(exc, Rejected):
        print(f"refused: {shown(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(exc, Forbidden):
        print(f"not permitted: {shown(exc)}", file=sys.stderr)
        return EXIT_FORBIDDEN
    if isinstance(exc, AlarmSourceError):
        print(f"alarm source: {shown(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(exc, BackupError):
        print(f"backup: {shown(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(exc, FilesBehind):
        print(f"flag files: {exc}", file=sys.stderr)
        return EXIT_STORE
    if isinstance(exc, StoreError | Conflict):
        print(f"store: {shown(exc)}", file=sys.stderr)
        return EXIT_STORE
    raise exc


HANDLERS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("config", "check"): cmd_config_check,
    ("status", None): cmd_status,
    ("rollout", "start"): cmd_rollout_start,
    ("rollout", "tick"): cmd_rollout_tick,
    ("gates", "check"): cmd_gates_check,
    ("sources", "check"): cmd_sources_check,
    ("store", "migrate"): cmd_store_migrate,
    ("store", "copy"): cmd_store_copy,
    ("deploy", None): cmd_deploy,
    ("store", "grant"): cmd_store_grant,
    ("kill", None): cmd_kill,
    ("all-clear", None): cmd_all_clear,
    ("flags", "list"): cmd_flags_list,
    ("flags", "set"): cmd_flags_set,
    ("flags", "history"): cmd_flags_history,
    ("flags", "schedule"): cmd_flags_schedule,
    ("flags", "schedules"): cmd_flags_schedules,
    ("flags", "cancel"): cmd_flags_cancel,
    ("flags", "eval"): cmd_flags_eval,
    ("improvements", "list"): cmd_improvements_list,
    ("improvements", "show"): cmd_improvements_show,
    ("improvements", "approve"): cmd_improvements_approve,
    ("improvements", "reject"): cmd_improvements_reject,
    ("improvements", "rollback"): cmd_improvements_rollback,
    ("improvements", "sync"): cmd_improvements_sync,
    ("improvements", "stats"): cmd_improvements_stats,
    ("improvements", "resume-autonomous"): cmd_improvements_resume,
    ("backup", "run"): cmd_backup_run,
    ("backup", "list"): cmd_backup_list,
    ("backup", "verify"): cmd_backup_verify,
    ("backup", "restore"): cmd_backup_restore,
    ("backup", "prune"): cmd_backup_prune,
    ("alarms", "list"): cmd_alarms_list,
    ("alarms", "silence"): cmd_alarms_silence,
    ("alarms", "unsilence"): cmd_alarms_unsilence,
    ("engine", None): cmd_engine,
    ("report", None): cmd_report,
    ("audit", None): cmd_audit,
    ("demo", None): cmd_demo,
    ("console", None): cmd_console,
    **{
        ("rollout", k): _rollout_command(k)
        for k in ("promote", "approve", "pause", "resume", "abort", "rollback")
    },
}


if __name__ == "__main__":
    raise SystemExit(main())
