"""Engine events into Textual messages.

The engine publishes from its event-loop thread (the runner) and from worker threads (commands run
off the loop). `post_message` is thread-safe, so every event becomes an `EngineChanged` message on
the app; panes coalesce them so a burst of events costs one refresh, not one per event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from opsconsole.engine import Engine


class EngineChanged(Message, bubble=False):
    """Something in the engine changed: `kind` is rollout, verdicts, flags, kill_switch, alarms, poll,
    engine. It does not bubble: the app fans it out to every pane, and bubbling back up would loop."""

    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        super().__init__()
        self.kind = kind
        self.data = data


def connect(engine: Engine, post: Callable[[Message], object]) -> Callable[[], None]:
    """Subscribe to the engine's bus; returns the unsubscribe function."""

    def forward(event: Any) -> None:
        post(EngineChanged(event.kind, event.data))

    unsubscribe: Callable[[], None] = engine.bus.subscribe(forward)
    return unsubscribe
