"""The `notifications:` section: where the engine sends word of kill switches, rollbacks and the like."""

from __future__ import annotations

from yaml.nodes import SequenceNode

from ..model import Notification
from .environments import checked_kind
from .fields import Fields
from .issues import suggest
from .nodes import item
from .values import http_url, positive_duration
from .yamlsrc import YamlSource

NOTIFY_EVENTS = (
    "kill_switch",
    "all_clear",
    "rollback",
    "approval_needed",
    "inconclusive",
    "completed",
    "improvement_rollback",
    "improvement_failed",
    "backup_failed",
)
"""Events the engine sends; a typo here would mean a notification that silently never comes."""


def read_notifications(src: YamlSource, main: Fields) -> tuple[Notification, ...]:
    items = main.sequence("notifications")
    out: list[Notification] = []
    for key, n in items:
        f = src.mapping(n, key, ("kind", "url", "events", "timeout"), required=("kind", "url"))
        if f is None:
            continue
        kind = checked_kind(f, ("webhook",), ("slack", "pagerduty", "telegram", "email"))
        url = f.parsed("url", http_url)
        events = f.texts("events", [])
        for i, event in enumerate(events):
            if event not in NOTIFY_EVENTS:
                enode = f.get("events")
                assert isinstance(enode, SequenceNode)
                src.issue(
                    enode.value[i],
                    item(f.path("events"), i),
                    f"unknown event '{event}'{suggest(event, NOTIFY_EVENTS)}",
                )
        timeout = f.parsed("timeout", positive_duration, 2.0)
        if kind and url:
            out.append(Notification(kind=kind, url=url, events=tuple(events), timeout=timeout))
    return tuple(out)
