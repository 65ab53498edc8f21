"""Start the console on an engine (the CLI's entry into the TUI)."""

from __future__ import annotations

from typing import Any


def run_console(engine: Any, *, theme: str | None = None, environment: str | None = None) -> int:
    from .app import OpsConsoleApp

    app = OpsConsoleApp(engine, theme=theme, environment=environment)
    app.run()
    return 0
