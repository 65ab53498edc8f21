"""`opsconsole engine`: the background runner without a screen, a well-behaved daemon.

It logs to stderr (one line per state change: running, leading or following, a busy or failing
store, warnings), stops cleanly on SIGTERM, SIGINT or SIGHUP (the tick in progress finishes, then
leadership is released so another engine takes over at once), and `--check` is a health probe.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from .common import (
    EXIT_OK,
    EXIT_REFUSED,
    _engine,
)

EXIT_UNHEALTHY = 1


def cmd_engine(args: argparse.Namespace) -> int:
    if getattr(args, "check", False):
        return _check(args)
    import asyncio  # only these commands need an event loop; `kill` must not pay for it

    from ..engine import EngineBusy, Runner, start_live

    engine = _engine(args)
    runner = Runner(engine, args.interval)
    try:
        runner.acquire()  # refused before anything says "running"
    except EngineBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    engine.engage_from_environment()
    # What the runner keeps retrying (flag files on a full disk, journal lines set aside) is said.
    engine.bus.subscribe(
        lambda e: (
            print(f"warning: {e.data.get('message', '')}", file=sys.stderr, flush=True)
            if e.kind == "warning"
            else None
        )
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        print(
            f"engine running on {engine.workspace} every {runner.interval:g}s (Ctrl-C or SIGTERM stops)",
            file=sys.stderr,
            flush=True,
        )
        engine.bus.subscribe(_print_engine_state)
        # On a PostgreSQL store: this host's flag files follow changes made anywhere (live.py).
        feed = start_live(engine, "engine")
        try:
            await runner.run(stop)
        finally:
            if feed is not None:
                await asyncio.to_thread(feed.stop)
        _log("engine stopped" + (": leadership released" if runner.leadership is not None else ""))

    asyncio.run(run())
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    """One line on stdout; exit 0 when healthy, 1 otherwise (any error is a reason, not a trace)."""
    from ..engine import check_engine

    try:
        engine = _engine(args, reading=True)
    except Exception as exc:
        print(f"unhealthy: {_one_line(exc)}", flush=True)
        return EXIT_UNHEALTHY
    try:
        ok, reason = check_engine(engine)
    finally:
        engine.close()
    print(f"{'ok' if ok else 'unhealthy'}: {reason}", flush=True)
    return EXIT_OK if ok else EXIT_UNHEALTHY


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _log(text: str) -> None:
    import time

    from ..engine import clock_text

    print(f"{clock_text(time.time())} {text}", file=sys.stderr, flush=True)


def _print_engine_state(event: Any) -> None:
    """The headless engine's log of its own state: a busy or failing store, and when it is back;
    leadership taken or lost."""
    if event.kind == "leader":
        _log(f"leader: {event.data['me']}" if event.data["leading"] else "following: another engine leads")
        return
    if event.kind != "engine" or event.data.get("state") not in ("running", "store_busy", "store_error"):
        return
    from ..engine import clock_text

    error = f": {event.data['error']}" if event.data.get("error") else ""
    print(
        f"{clock_text(event.data['since'])} engine {event.data['state']}{error}", file=sys.stderr, flush=True
    )
