"""What the runner is doing right now, for whoever asks: the console's header, `opsconsole status`.

A store that another process keeps locked, or that fails, is a state the engine is in, not a reason to
stop: the runner keeps ticking (with backoff), publishes the state on the bus (`engine` events) and
keeps it in a small file in the workspace, so `status` from another terminal says "store busy since
14:02:11" too. The file is rewritten (atomically) when the state changes, not every tick, and is
believed only while the process it names holds the workspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .fsutil import write_json_atomic
from .store import StoreBusy

if TYPE_CHECKING:
    from .events import EventBus

HEALTH_FILE = "engine-health.json"
SLOW_WRITE = 1.0
"""A store write still waiting after this many seconds is reported as a busy store while it waits."""
MAX_BACKOFF = 10.0
"""The longest pause between two attempts while the store keeps failing."""

T = TypeVar("T")


@dataclass(frozen=True)
class Health:
    state: str
    """running | store_busy (another writer holds the lock) | store_error (the store fails) | stopped"""
    since: float
    error: str = ""
    pid: int = 0

    def note(self) -> str:
        """What a person needs to know beyond "running": empty when all is well."""
        if self.state == "store_busy":
            return f"store busy since {clock_text(self.since)}"
        if self.state == "store_error":
            return f"store failing since {clock_text(self.since)}"
        return ""


def clock_text(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


class HealthTracker:
    """The runner's state: changed by the loop, published on the bus and kept in the workspace."""

    def __init__(self, workspace: Path, bus: EventBus, clock: Callable[[], float] = time.time) -> None:
        self.path = workspace / HEALTH_FILE
        self.bus = bus
        self.clock = clock
        self.failures = 0
        self.current = Health("stopped", clock(), pid=os.getpid())

    def start(self) -> None:
        self._set("running", self.clock())

    def stop(self) -> None:
        self._set("stopped", self.clock())

    def ok(self) -> None:
        self.failures = 0
        if self.current.state != "running":
            self._set("running", self.clock())

    def failed(self, exc: Exception, interval: float) -> float:
        """Record a failed attempt; returns how long to wait before the next (doubling, bounded)."""
        self.failures += 1
        state = "store_busy" if isinstance(exc, StoreBusy) else "store_error"
        since = self.current.since if self.current.state == state else self.clock()
        self._set(state, since, str(exc))
        return float(min(interval * 2 ** (self.failures - 1), MAX_BACKOFF))

    async def watch(self, work: Awaitable[T]) -> T:
        """Await a store write; if it is still waiting after SLOW_WRITE, say the store is busy since it
        started (the write itself waits for the lock up to the store's busy timeout)."""
        started = self.clock()
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=SLOW_WRITE)
        if not done and self.current.state == "running":
            self._set("store_busy", started, "a write is waiting for the store's lock")
        return await task

    def _set(self, state: str, since: float, error: str = "") -> None:
        self.current = Health(state, since, error, os.getpid())
        self.bus.publish("engine", state=state, since=since, error=error)
        # Saying so must not become a new way to fail (a full disk): the bus already has it.
        with contextlib.suppress(OSError):
            write_json_atomic(self.path, asdict(self.current))


def read(workspace: Path, pid: int | None) -> Health | None:
    """The state the runner with `pid` last recorded, or None (no runner, or the file is another's)."""
    if pid is None:
        return None
    try:
        data = json.loads((workspace / HEALTH_FILE).read_text())
        health = Health(
            str(data["state"]), float(data["since"]), str(data.get("error", "")), int(data["pid"])
        )
    except (OSError, ValueError, LookupError, TypeError):
        return None
    return health if health.pid == pid else None
