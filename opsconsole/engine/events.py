"""In-process publish/subscribe of engine events.

The console subscribes to refresh its panes; the headless runner has no subscribers. Callbacks run on
the publisher's thread and must be quick: a slow subscriber must not delay a rollback, so exceptions
are swallowed and counted rather than propagated into the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EngineEvent:
    kind: str  # rollout | verdicts | flags | schedules | kill_switch | alarms | engine
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[EngineEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self.errors = 0

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, kind: str, **data: Any) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        if not subscribers:
            return
        event = EngineEvent(kind, data)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                self.errors += 1
