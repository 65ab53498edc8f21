"""Start the console (the CLI's entry into the TUI)."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsconsole.engine import Engine, FirstLook

    from .app import OpsConsoleApp

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end the console the way `q` does. Python's default for them kills the process on the
spot: the terminal stays in the alternate screen with the cursor hidden, and the engine stops
mid-tick. Handled, the app exits normally: the screen is restored and the in-process runner stops
and releases the workspace lock."""


def run_console(
    opener: Callable[[], Engine],
    *,
    theme: str | None = None,
    environment: str | None = None,
    look: Callable[[], FirstLook | None] | None = None,
    theme_cache: Path | None = None,
) -> int:
    """Paint the console (with the rollouts `look` reads from the store, when it vouches for them),
    open the engine with `opener` behind its first frame (`theme_cache`: themes.load_themes_cached), run until quit (or
    SIGTERM / SIGHUP: exit code 128 + the signal). An error while opening (a bad configuration) is
    raised here, after the screen is restored, for the CLI to report with its exit code."""
    # Everything built on the way to the frame with the rollouts (modules, styles, widgets, the
    # engine) lives as long as the console, and at that many new objects the cyclic collector runs
    # a hundred passes over them, one of them full (about 50 ms, a fifth of the start); the app
    # turns it back on after that frame (OpsConsoleApp._after_engine_frame), having frozen what
    # was built.
    gc.disable()
    try:
        from .app import OpsConsoleApp

        app = OpsConsoleApp(
            opener=opener, look=look, theme=theme, environment=environment, theme_cache=theme_cache
        )
        code = run_app(app)
    finally:
        gc.enable()
    if app.load_error is not None:
        raise app.load_error
    return code


def run_app(app: OpsConsoleApp) -> int:
    """Run a console app in this terminal until it exits; its exit code (128 + the signal when a
    STOP_SIGNALS signal ended it)."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, app.exit, None, 128 + sig)
        try:
            await app.run_async()
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    asyncio.run(run())
    return int(app.return_code or 0)
