"""The `notifications:` section: where the engine sends word of kill switches, rollbacks and the like.

    notifications:
      - {kind: webhook, url: "https://hooks.example.com/ops", events: [kill_switch, rollback]}
      - {kind: slack, url: "https://hooks.slack.com/services/...", events: [approval_needed]}
      - kind: telegram
        chat_id: -1001234567890          # or "@channel"
        token_env: TELEGRAM_BOT_TOKEN    # the bot token is read from here when a message is sent
        api_url: https://api.telegram.org  # the default; a test points it at a loopback server
        events: [kill_switch, rollback, alarm_firing]

`events` empty or unset means every event. The Telegram token is never written in the configuration:
a URL with `/bot<token>` in it is refused with a message saying to use token_env.
"""

from __future__ import annotations

import os
import re

from yaml.nodes import ScalarNode, SequenceNode

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
    "alarm_firing",
)
"""Events the engine sends; a typo here would mean a notification that silently never comes."""

KINDS = ("webhook", "slack", "telegram")
TELEGRAM_API = "https://api.telegram.org"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHAT_ID = re.compile(r"-?[0-9]+|@[A-Za-z][A-Za-z0-9_]{4,}")
_BOT_PATH = re.compile(r"/bot[^/]*:")
_KEYS = {
    "webhook": ("kind", "url", "events", "timeout"),
    "slack": ("kind", "url", "events", "timeout"),
    "telegram": ("kind", "chat_id", "token_env", "api_url", "events", "timeout"),
}
_ALL_KEYS = tuple(dict.fromkeys(k for keys in _KEYS.values() for k in keys))


def read_notifications(src: YamlSource, main: Fields) -> tuple[Notification, ...]:
    items = main.sequence("notifications")
    out: list[Notification] = []
    for key, n in items:
        f = src.mapping(n, key, _ALL_KEYS, required=("kind",))
        if f is None:
            continue
        kind = checked_kind(f, KINDS, ("pagerduty", "email"))
        if kind is None:
            continue
        for name, _ in list(f):
            if name not in _KEYS[kind]:
                f.issue(
                    name, f"'{name}' does not apply to kind '{kind}' (it takes: {', '.join(_KEYS[kind])})"
                )
        events = _events(src, f)
        timeout = f.parsed("timeout", positive_duration, 2.0)
        if kind == "telegram":
            n_ = _telegram(f, events, timeout)
        else:
            f.require("url")
            url = f.parsed("url", http_url)
            n_ = None if url is None else Notification(kind=kind, url=url, events=events, timeout=timeout)
        if n_ is not None:
            out.append(n_)
    return tuple(out)


def _events(src: YamlSource, f: Fields) -> tuple[str, ...]:
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
    return tuple(events)


def _telegram(f: Fields, events: tuple[str, ...], timeout: float) -> Notification | None:
    ok = f.require("chat_id", "token_env")
    chat = f.get("chat_id")
    chat_id = ""
    if chat is not None:
        # YAML reads -100123 as a number; the Bot API takes the digits or an @channel name.
        chat_id = str(chat.value).strip() if isinstance(chat, ScalarNode) else ""
        if not _CHAT_ID.fullmatch(chat_id):
            f.issue(
                "chat_id",
                f"expected a Telegram chat id (digits, maybe with '-') or '@channel', got {chat_id!r}",
            )
            ok = False
    token_env = f.text("token_env")
    if token_env is not None and not _ENV_NAME.fullmatch(token_env):
        # Someone pasted the token itself here: say so without repeating it.
        f.issue(
            "token_env",
            "expected the name of an environment variable that holds the bot token (not the token)",
        )
        ok = False
    api_url = f.parsed("api_url", http_url, TELEGRAM_API)
    if api_url is not None and _BOT_PATH.search(api_url):
        f.issue(
            "api_url", "a bot token in the URL would be shown and logged; give the base URL and use token_env"
        )
        ok = False
    if not ok or api_url is None or token_env is None:
        return None
    return Notification(
        kind="telegram",
        url=api_url.rstrip("/"),
        events=events,
        timeout=timeout,
        chat_id=chat_id,
        token_env=token_env,
    )


def missing_secrets(notifications: tuple[Notification, ...]) -> list[str]:
    """What `config check` reports beyond the file: a Telegram token variable that is not set here.
    (Loading does not refuse it: the kill switch must work whatever the environment lacks.)"""
    out = []
    for i, n in enumerate(notifications):
        if n.kind == "telegram" and not os.environ.get(n.token_env):
            out.append(
                f"notifications[{i}] (telegram chat {n.chat_id}): environment variable {n.token_env} "
                "is not set; the bot token is read from it when a message is sent"
            )
    return out
