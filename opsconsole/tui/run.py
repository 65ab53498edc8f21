"""Start the console (the CLI's entry into the TUI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def run_console(
    opener: Callable[[], Any], *, theme: str | None = None, environment: str | None = None
) -> int:
    """Paint the console, open the engine with `opener` behind its first frame, run until quit. An
    error while opening (a bad configuration) is raised here, after the screen is restored, for the
    CLI to report with its exit code."""
    from .app import OpsConsoleApp

    app = OpsConsoleApp(opener=opener, theme=theme, environment=environment)
    app.run()
    if app.load_error is not None:
        raise app.load_error
    return 0
