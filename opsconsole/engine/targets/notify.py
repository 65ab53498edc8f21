"""Notifications: webhook POSTs sent after the state they report is written, never before.

Sending happens on a daemon thread so nothing that notifies (the kill switch above all) waits for a
slow or dead receiver; each POST is bounded by the notification's timeout.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..model import Notification


def _post(url: str, body: bytes, timeout: float) -> None:
    import httpx

    with contextlib.suppress(httpx.HTTPError):  # best effort; the audit log is the record
        httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=timeout)


def send(
    notifications: Sequence[Notification], event: str, message: str, **data: Any
) -> list[threading.Thread]:
    """Fire matching notifications in the background; returns the threads (tests may join them)."""
    payload = json.dumps(
        {"event": event, "message": message, "at": time.time(), **data}, default=str
    ).encode()
    threads = []
    for n in notifications:
        if n.events and event not in n.events:
            continue
        t = threading.Thread(
            target=_post, args=(n.url, payload, n.timeout), daemon=True, name=f"notify-{event}"
        )
        t.start()
        threads.append(t)
    return threads
