"""Silences on an environment's Alertmanager, made and expired by a person: checked, sent, audited.

The request goes to Alertmanager first and the audit record follows it; if the record cannot be
written the silence is expired again, so no silence exists that the audit log does not name. Times
sent to Alertmanager are wall-clock times, whatever clock the engine runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from .model import AlarmSource
from .sources.alertmanager import AlarmSourceError, AlertmanagerSource, Silence

if TYPE_CHECKING:
    import httpx

    from .alarms import AlarmStatus
    from .core import Engine

T = TypeVar("T")

MAX_DURATION = 30 * 86400.0
"""A silence longer than a month is a rule change in disguise: it belongs in Alertmanager's config."""


def source_of(engine: Engine, environment: str) -> AlertmanagerSource:
    env = engine.config.environments.get(environment)
    if env is None:
        known = ", ".join(sorted(engine.config.environments)) or "none"
        raise ValueError(f"unknown environment {environment!r} (known: {known})")
    if env.alarms is None:
        raise ValueError(f"environment {environment} has no alarm source (no alarms: in its config)")
    if not isinstance(env.alarms, AlarmSource):
        raise ValueError(
            f"environment {environment} reads {env.alarms.kind} alarms: silences are Alertmanager's"
        )
    return AlertmanagerSource(environment, env.alarms)


def alarm_environments(engine: Engine) -> list[str]:
    """The environments whose alarms are Alertmanager's: the ones with alerts to list and silence."""
    envs = engine.config.environments.items()
    return sorted(name for name, env in envs if isinstance(env.alarms, AlarmSource))


def _call(fn: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """One request on a client of its own: called from a thread or the CLI, never on an event loop."""

    async def main() -> T:
        import httpx

        async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as client:
            return await fn(client)

    return asyncio.run(main())


def silence(
    engine: Engine, environment: str, matchers: Mapping[str, str], duration: float, reason: str
) -> str:
    """Silence the alerts matching every (label, value) for `duration` seconds; the silence id."""
    engine.authz.require(engine.actor, "alarm.silence")
    src = source_of(engine, environment)
    if not matchers:
        raise ValueError("a silence needs at least one label matcher (alertname=NAME)")
    if not reason.strip():
        raise ValueError("a silence needs a reason")
    if not 0 < duration <= MAX_DURATION:
        raise ValueError(f"a silence lasts more than 0s and at most 30d, got {duration:g}s")
    # Scoped to the environment like its alert list: a silence made from production's console does
    # not quiet the same alert of another environment sharing the Alertmanager.
    pairs = sorted({**matchers, **dict(src.config.matchers)}.items())
    start = time.time()
    silence_id = _call(
        lambda c: src.create_silence(c, pairs, start, start + duration, engine.actor.user, reason)
    )
    now = engine.clock()
    data = {"matchers": dict(pairs), "duration": duration, "ends_at": start + duration, "reason": reason}
    try:
        with engine.store.transaction() as tx:
            tx.append_audit(now, engine.actor, "alarm.silence", f"silence:{environment}/{silence_id}", data)
    except Exception:
        # The store error says more; if this fails too the silence ends at its own time.
        with contextlib.suppress(AlarmSourceError):
            _call(lambda c: src.expire_silence(c, silence_id))
        raise
    engine.bus.publish("alarms")
    return silence_id


def expire(engine: Engine, environment: str, silence_id: str, reason: str) -> None:
    """End a silence now: its alerts fire again (if they still do) at the next read."""
    engine.authz.require(engine.actor, "alarm.unsilence")
    src = source_of(engine, environment)
    if not reason.strip():
        raise ValueError("expiring a silence needs a reason")
    _call(lambda c: src.expire_silence(c, silence_id))
    with engine.store.transaction() as tx:
        tx.append_audit(
            engine.clock(),
            engine.actor,
            "alarm.unsilence",
            f"silence:{environment}/{silence_id}",
            {"reason": reason},
        )
    engine.bus.publish("alarms")


def silences(engine: Engine, environment: str) -> list[Silence]:
    src = source_of(engine, environment)
    return _call(src.silences)


def alerts(engine: Engine, environment: str) -> list[AlarmStatus]:
    """The environment's alerts read once now; an unreachable source raises AlarmSourceError."""
    src = source_of(engine, environment)

    async def read(client: httpx.AsyncClient) -> list[AlarmStatus]:
        await src.refresh(client, engine.clock())
        if src.error is not None:
            raise AlarmSourceError(src.error)
        return src.statuses()

    return _call(read)
