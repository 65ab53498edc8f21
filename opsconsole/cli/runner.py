"""`opsconsole engine`: the background runner without a screen."""

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


def cmd_engine(args: argparse.Namespace) -> int:
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
        print(f"engine running on {engine.workspace} every {runner.interval:g}s (Ctrl-C stops)", flush=True)
        engine.bus.subscribe(_print_engine_state)
        # On a PostgreSQL store: this host's flag files follow changes made anywhere (live.py).
        feed = start_live(engine, "engine")
        try:
            await runner.run(stop)
        finally:
            if feed is not None:
                await asyncio.to_thread(feed.stop)

    asyncio.run(run())
    return EXIT_OK


def _print_engine_state(event: Any) -> None:
    """The headless engine's log of its own state: a busy or failing store, and when it is back."""
    if event.kind != "engine" or event.data.get("state") not in ("running", "store_busy", "store_error"):
        return
    from ..engine import clock_text

    error = f": {event.data['error']}" if event.data.get("error") else ""
    print(f"{clock_text(event.data['since'])} engine {event.data['state']}{error}", flush=True)
