"""Fixtures and helpers for console tests: the integration fixtures (a real demo service on 127.0.0.1),
and the few helpers every console test file needs (import them from here, do not copy them)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor
from opsconsole.tui.app import OpsConsoleApp
from tests.integration.conftest import load_ws, service  # noqa: F401


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async pilot test on its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def engine_for(ws: Path, user: str = "alice", **kwargs: Any) -> Engine:
    """An engine on workspace `ws` (written by write_workspace) acting as `user`."""
    return Engine(load_ws(ws), ws, Actor(user, "test"), **kwargs)


def console(engine: Engine, **kwargs: Any) -> OpsConsoleApp:
    """The console on `engine`, without the runner (tests drive the engine) and without animations
    (a tab underline would otherwise slide on every pane switch)."""
    app = OpsConsoleApp(engine, run_engine=False, **kwargs)
    app.animation_level = "none"
    return app


def screen_text(app: OpsConsoleApp) -> str:
    """What the terminal shows, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def until(
    pilot: Any, check: Callable[[], object], what: str = "condition", seconds: float = 5.0
) -> None:
    """Let the console run until `check()` holds (checked after each pause), or fail naming `what`."""
    for _ in range(int(seconds / 0.02)):
        await pilot.pause(0.02)
        if check():
            return
    raise AssertionError(f"timed out waiting for {what}")
