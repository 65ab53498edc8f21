"""Notifications: webhook POSTs, through a durable outbox in the store.

A notification is written to the outbox in the transaction of the event it reports (never before
the state it reports), then sent from there: at once on a background thread of the process that
wrote it, and by a running engine on every tick for whatever is still pending. A process that exits
before its POST (a CLI command) therefore loses nothing: the next engine delivers it. Each POST is
bounded by the notification's timeout; a failed one is retried with growing pauses, up to
MAX_ATTEMPTS, then marked failed. Delivery is at least once: a receiver may see a duplicate when a
sender dies between the POST and its record.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..model import Notification
from ..redact import redact_text

MAX_ATTEMPTS = 8
MAX_PAUSE = 300.0
LEASE_MARGIN = 5.0
"""A claimed notification is left to its sender for its timeout plus this, then others may retry."""

_inflight: set[threading.Thread] = set()
_inflight_lock = threading.Lock()


def _payload(event: str, message: str, at: float, data: dict[str, Any]) -> str:
    return json.dumps({"event": event, "message": message, "at": at, **data}, default=str)


def _matching(notifications: Sequence[Notification], event: str) -> list[Notification]:
    return [n for n in notifications if not n.events or event in n.events]


def enqueue(
    tx: Any, notifications: Sequence[Notification], event: str, message: str, at: float, **data: Any
) -> list[int]:
    """Write the matching notifications to the outbox in `tx`; returns their ids."""
    body = _payload(event, message, at, data)
    return [
        tx.enqueue_notification(event, n.url, body, n.timeout, at) for n in _matching(notifications, event)
    ]


def _post(url: str, body: bytes, timeout: float) -> str:
    """ "" when the receiver took it (2xx), else what went wrong (secrets in URLs redacted)."""
    import httpx

    try:
        resp = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=timeout)
    except httpx.HTTPError as exc:
        return redact_text(f"{type(exc).__name__}: {exc}")
    return "" if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"


def pause_after(attempts: int) -> float:
    return float(min(MAX_PAUSE, 2**attempts))


def deliver(
    store: Any,
    ids: Sequence[int] | None = None,
    clock: Callable[[], float] = time.time,
    budget: float = 10.0,
    post: Callable[[str, bytes, float], str] = _post,
) -> int:
    """Send due pending notifications (or only `ids`) until none is left or `budget` seconds have
    gone; returns how many were delivered. Store errors are raised (the outbox keeps its rows)."""
    deadline = time.monotonic() + budget
    delivered = 0
    while time.monotonic() < deadline:
        with store.transaction(timeout=2.0) as tx:
            claimed = tx.claim_notifications(clock(), LEASE_MARGIN, ids, limit=1)
        if not claimed:
            return delivered
        item = claimed[0]
        error = post(item.url, item.body.encode(), item.timeout)
        now = clock()
        with store.transaction(timeout=2.0) as tx:
            if not error:
                tx.finish_notification(item.id, "delivered", "", now, now)
                delivered += 1
            elif item.attempts >= MAX_ATTEMPTS:
                tx.finish_notification(item.id, "failed", error, now, now)
            else:
                tx.finish_notification(item.id, "pending", error, now + pause_after(item.attempts), now)
    return delivered


def deliver_soon(store: Any, ids: Iterable[int], budget: float = 30.0) -> threading.Thread | None:
    """Send these notifications now on a background thread (what the outbox keeps if the process
    exits first is sent by the next engine); `flush` waits for such threads."""
    ids = list(ids)
    if not ids:
        return None

    def run() -> None:
        with contextlib.suppress(Exception):  # the outbox keeps what was not sent
            deliver(store, ids, budget=budget)
        with _inflight_lock:
            _inflight.discard(thread)

    thread = threading.Thread(target=run, daemon=True, name="notify")
    with _inflight_lock:
        _inflight.add(thread)
    thread.start()
    return thread


_draining: dict[int, threading.Thread] = {}


def drain_soon(store: Any, clock: Callable[[], float] = time.time, budget: float = 30.0) -> bool:
    """Send whatever is due in the outbox on a background thread, unless one is at it already for
    this store (a runner calls this every tick; a dead receiver must not hold the tick up).
    Returns whether a thread was started."""
    with _inflight_lock:
        running = _draining.get(id(store))
        if running is not None and running.is_alive():
            return False

        def run() -> None:
            with contextlib.suppress(Exception):  # the outbox keeps it; the next tick tries again
                deliver(store, clock=clock, budget=budget)

        thread = threading.Thread(target=run, daemon=True, name="notify-outbox")
        _draining[id(store)] = thread
    thread.start()
    return True


def flush(timeout: float) -> bool:
    """Wait at most `timeout` seconds for this process's background sends; True when none is left."""
    deadline = time.monotonic() + timeout
    while True:
        with _inflight_lock:
            threads = list(_inflight)
        if not threads:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        threads[0].join(left)


def send(
    notifications: Sequence[Notification], event: str, message: str, **data: Any
) -> list[threading.Thread]:
    """Best effort, without the outbox: only for when the store cannot take the notification (the
    kill switch's record failed; its journal line brings the durable one when it is recorded)."""
    body = _payload(event, message, time.time(), data).encode()
    threads = []
    for n in _matching(notifications, event):
        t = threading.Thread(target=_post, args=(n.url, body, n.timeout), daemon=True, name=f"notify-{event}")
        t.start()
        threads.append(t)
    return threads
