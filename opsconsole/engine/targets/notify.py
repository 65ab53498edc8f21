"""Notifications: webhook POSTs, through a durable outbox in the store.

A notification is written to the outbox in the transaction of the event it reports (never before
the state it reports), then sent from there: at once on a background thread of the process that
wrote it, and by a running engine on every tick for whatever is still pending. A process that exits
before its POST (a CLI command) therefore loses nothing: the next engine delivers it. Each POST is
bounded by the notification's timeout; a failed one is retried with growing pauses, up to
MAX_ATTEMPTS, then marked failed. Delivery is at least once: a receiver may see a duplicate when a
sender dies between the POST and its record.

Formats (the notification's `kind`): `webhook` posts the event as generic JSON ({"event", "message",
"at", ...}); `slack` posts Slack's incoming-webhook shape (`text` plus `blocks`); `telegram` calls the
Bot API's sendMessage for one chat. The body is built when the notification is written, so what a
later engine sends is what the event said. A Telegram row's URL names the environment variable of
the bot token (`.../bot{env:NAME}/sendMessage`), never the token: the token is read at each send and
masked in every error text, so neither the store, `opsconsole status`, the header nor a log gets it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from ..model import Notification
from ..redact import MASK, redact_text

MAX_ATTEMPTS = 8
MAX_PAUSE = 300.0
LEASE_MARGIN = 5.0
"""A claimed notification is left to its sender for its timeout plus this, then others may retry."""

_inflight: set[threading.Thread] = set()
_inflight_lock = threading.Lock()


_ENV_REF = re.compile(r"\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
TITLES = {
    "kill_switch": "Kill switch engaged",
    "all_clear": "All clear",
    "rollback": "Rollback",
    "approval_needed": "Approval needed",
    "inconclusive": "Rollout paused: inconclusive",
    "completed": "Rollout completed",
    "improvement_rollback": "Improvement rolled back",
    "improvement_failed": "Improvement failed",
    "backup_failed": "Backup failed",
    "alarm_firing": "Alarm firing",
}


def _payload(event: str, message: str, at: float, data: dict[str, Any]) -> str:
    return json.dumps({"event": event, "message": message, "at": at, **data}, default=str)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn: these three are the control characters (<!channel>, <url|label>).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _context(data: dict[str, Any]) -> str:
    return " · ".join(f"{k}: {v}" for k, v in data.items() if v not in (None, ""))


def _slack(event: str, message: str, at: float, data: dict[str, Any]) -> str:
    title = TITLES.get(event, event)
    context = " · ".join(p for p in ("opsconsole", _when(at), _context(data)) if p)
    return json.dumps(
        {
            "text": f"{title}: {message}",  # what notifications and old clients show
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(message)[:3000]}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(context)[:3000]}]},
            ],
            "event": event,
        },
        default=str,
    )


def _telegram(chat_id: str, event: str, message: str, at: float, data: dict[str, Any]) -> str:
    # Plain text (no parse_mode): remote text in a message can never become markup or a link.
    lines = [f"{TITLES.get(event, event)}", message, f"{_when(at)}"]
    if extra := _context(data):
        lines.append(extra)
    return json.dumps(
        {"chat_id": chat_id, "text": "\n".join(lines)[:4096], "disable_web_page_preview": True},
        default=str,
    )


def body_for(n: Notification, event: str, message: str, at: float, data: dict[str, Any]) -> str:
    if n.kind == "slack":
        return _slack(event, message, at, data)
    if n.kind == "telegram":
        return _telegram(n.chat_id, event, message, at, data)
    return _payload(event, message, at, data)


def target_url(n: Notification) -> str:
    """What the outbox keeps as the receiver: for telegram, the environment variable's name where
    the token goes."""
    if n.kind == "telegram":
        return f"{n.url}/bot{{env:{n.token_env}}}/sendMessage"
    return n.url


def destination(url: str, body: str = "") -> str:
    """A receiver as the console shows it: kind and host, never a path or a query (a Slack webhook's
    path is its secret)."""
    kind = "telegram" if _ENV_REF.search(url) else "slack" if '"blocks": [' in body else "webhook"
    try:
        host = urlsplit(url).hostname or "?"
        port = urlsplit(url).port
    except ValueError:
        return kind
    return f"{kind} {host}:{port}" if port else f"{kind} {host}"


def _matching(notifications: Sequence[Notification], event: str) -> list[Notification]:
    return [n for n in notifications if not n.events or event in n.events]


def enqueue(
    tx: Any, notifications: Sequence[Notification], event: str, message: str, at: float, **data: Any
) -> list[int]:
    """Write the matching notifications to the outbox in `tx`; returns their ids."""
    return [
        tx.enqueue_notification(event, target_url(n), body_for(n, event, message, at, data), n.timeout, at)
        for n in _matching(notifications, event)
    ]


class _MaskSecrets(logging.Filter):
    """On httpx's logger (whose INFO line quotes each request's URL, the bot token in it): the
    secrets this process has read are masked in every record, whoever turned logging on."""

    secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(secret in text for secret in self.secrets):
            record.msg, record.args = _masked(text, list(self.secrets)), None
        return True


_mask = _MaskSecrets()


def _remember(secret: str) -> None:
    if secret not in _MaskSecrets.secrets:
        _MaskSecrets.secrets.add(secret)
        logger = logging.getLogger("httpx")
        if _mask not in logger.filters:
            logger.addFilter(_mask)


def _resolve(url: str) -> tuple[str, list[str]]:
    """The URL to call, with each `{env:NAME}` replaced by the variable's value, and those values
    (to be masked in whatever text comes back). KeyError names a variable that is not set."""
    secrets: list[str] = []

    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1), "")
        if not value:
            raise KeyError(m.group(1))
        secrets.append(value)
        _remember(value)
        return value

    return _ENV_REF.sub(sub, url), secrets


def _masked(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return redact_text(text)


def _post(url: str, body: bytes, timeout: float) -> str:
    """ "" when the receiver took it (2xx), else what went wrong (tokens and secrets in URLs masked)."""
    import httpx

    try:
        real, tokens = _resolve(url)
    except KeyError as exc:
        return f"environment variable {exc.args[0]} is not set (it holds the bot token)"
    # An error that quotes the URL must not show a webhook's path (Slack's is its secret) or a token.
    path = urlsplit(real).path
    secrets = [real, *([path] if len(path) > 8 else []), *tokens]
    try:
        resp = httpx.post(real, content=body, headers={"content-type": "application/json"}, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # InvalidURL: a port past 65535
        return _masked(f"{type(exc).__name__}: {exc}", secrets)
    if 200 <= resp.status_code < 300:
        return ""
    detail = ""
    with contextlib.suppress(ValueError, AttributeError):
        detail = str(resp.json().get("description", ""))  # the Bot API says why ("chat not found")
    return _masked(f"HTTP {resp.status_code}" + (f": {detail[:200]}" if detail else ""), secrets)


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
    now = time.time()
    threads = []
    for n in _matching(notifications, event):
        body = body_for(n, event, message, now, data).encode()
        args = (target_url(n), body, n.timeout)
        t = threading.Thread(target=_post, args=args, daemon=True, name=f"notify-{event}")
        t.start()
        threads.append(t)
    return threads


TROUBLE_WINDOW = 24 * 3600.0
"""A notification that failed for good is shown as trouble for this long (then only counted)."""
_TROUBLE_LIMIT = 20


@dataclass(frozen=True)
class Trouble:
    """One notification that did not get through (yet): what the console shows about it."""

    id: int
    event: str
    destination: str  # kind and host, never the path, query or token
    state: str  # pending (being retried) | failed (given up)
    attempts: int
    error: str  # masked
    at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OutboxSummary:
    """The outbox at a glance: counts by state and the notifications in trouble, newest first."""

    pending: int = 0
    delivered: int = 0
    failed: int = 0
    troubles: tuple[Trouble, ...] = ()

    @property
    def retrying(self) -> int:
        return sum(1 for t in self.troubles if t.state == "pending")

    @property
    def failed_recently(self) -> int:
        return sum(1 for t in self.troubles if t.state == "failed")

    def note(self) -> str:
        """One short phrase for the header, "" when nothing is wrong."""
        if not self.troubles:
            return ""
        parts = []
        more = "+" if len(self.troubles) >= _TROUBLE_LIMIT else ""
        if self.failed_recently:
            parts.append(f"{self.failed_recently}{more} failed")
        if self.retrying:
            parts.append(f"{self.retrying}{more} retrying")
        last = self.troubles[0]
        return f"notify: {', '.join(parts)} ({last.destination}: {last.error})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "delivered": self.delivered,
            "failed": self.failed,
            "retrying": self.retrying,
            "failed_recently": self.failed_recently,
            "troubles": [t.to_dict() for t in self.troubles],
        }


def summary(store: Any, now: float | None = None) -> OutboxSummary:
    """Read the outbox's state (two small queries); store errors are raised."""
    now = time.time() if now is None else now
    with store.read() as tx:
        counts = tx.notification_counts()
        rows = tx.notification_troubles(now - TROUBLE_WINDOW, _TROUBLE_LIMIT)
    troubles = tuple(
        Trouble(
            r.id,
            r.event,
            destination(r.url, r.body),
            r.state,
            r.attempts,
            _masked(r.last_error, ()),
            r.updated_at,
        )
        for r in rows
    )
    return OutboxSummary(
        pending=counts.get("pending", 0),
        delivered=counts.get("delivered", 0),
        failed=counts.get("failed", 0),
        troubles=troubles,
    )


ALARMS_FIRING = "alarms_firing"
"""Store key: the alarms announced as firing ({name: since}) and not seen `ok` since. A restarted
engine (whose alarms start again as pending) does not announce them twice; an alarm that clears and
fires again is announced again."""


class AlarmWatch:
    """Announces alarms that start firing: the record (store key, audit event) and the `alarm_firing`
    notifications are written in one transaction, then sent. Only a change costs a write: `due` is
    cheap and runs on the loop, `record` does the store work (call it in a thread)."""

    def __init__(self) -> None:
        self._seen: set[str] | None = None  # None: not compared with the store yet

    def due(self, alarms: dict[str, Any]) -> bool:
        firing = {n for n, a in alarms.items() if a.state == "firing"}
        if self._seen is None:
            return bool(alarms)
        return bool(firing - self._seen) or any(
            n not in alarms or alarms[n].state == "ok" for n in self._seen
        )

    def record(self, engine: Any, alarms: dict[str, Any], now: float) -> list[int]:
        from ..model import ENGINE_ACTOR

        sent: list[int] = []
        with engine.store.transaction(timeout=2.0) as tx:
            known = dict(tx.get_kv(ALARMS_FIRING, {}) or {})
            after = {n: s for n, s in known.items() if n in alarms and alarms[n].state != "ok"}
            for name, a in sorted(alarms.items()):
                if a.state != "firing" or name in after:
                    continue
                since = float(a.since or now)
                after[name] = since
                message = f"alarm {name} ({a.severity}) firing in {a.environment}: {a.reason}"
                tx.append_audit(
                    now, ENGINE_ACTOR, "alarm.firing", f"alarm:{name}", {"since": since, "reason": a.reason}
                )
                sent += enqueue(
                    tx,
                    engine.config.notifications,
                    "alarm_firing",
                    message,
                    now,
                    alarm=name,
                    environment=a.environment,
                    severity=a.severity,
                )
            if after != known:
                tx.set_kv(ALARMS_FIRING, after, now)
        self._seen = set(after)
        return sent
