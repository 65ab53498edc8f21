"""Alertmanager as an alarm source (`/api/v2/alerts`) and the place silences are made (`/api/v2/silences`).

Every request has its own timeout and a hard deadline around it, so a slow or dead Alertmanager makes
its environment's alarms `unknown` (with the reason), never a hang. Credentials come from the
variable the config names, go only into request headers, and never into a reason, an error or a log.
Alerts that were firing when the source became unreachable stay firing until it answers again: an
outage must not read as "all clear".
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..alarms import FIRING, INHIBITED, SILENCED, UNKNOWN, AlarmStatus
from ..model import AlarmSource
from ..redact import redact_text, redact_url

if TYPE_CHECKING:
    import httpx

SOURCE = "alertmanager"

SEVERITIES: dict[str, str] = {
    **{f"p{n}": f"P{n}" for n in range(4)},
    **{f"sev{n}": f"P{n}" for n in range(4)},
    "critical": "P0",
    "emergency": "P0",
    "fatal": "P0",
    "high": "P1",
    "error": "P1",
    "major": "P1",
    "page": "P1",
    "warning": "P2",
    "medium": "P2",
    "minor": "P2",
    "info": "P3",
    "low": "P3",
    "none": "P3",
}
"""Alert `severity` (or `priority`) label -> the seed's levels: P0 critical (system down), P1 high
(major feature broken), P2 medium, P3 low."""
DEFAULT_SEVERITY = "P2"
"""An alert without a severity we know is treated as medium; its own label is shown beside it."""

MAX_ALERTS = 5000
"""More than this from one Alertmanager is read as a misconfigured filter, not shown row by row."""


class AlarmSourceError(Exception):
    """An Alertmanager could not be reached or refused a request; the message is safe to show."""


def severity_of(labels: Mapping[str, str]) -> str:
    raw = (labels.get("severity") or labels.get("priority") or "").strip().lower()
    return SEVERITIES.get(raw, DEFAULT_SEVERITY)


@dataclass(frozen=True)
class Silence:
    id: str
    state: str  # active | pending | expired
    matchers: tuple[tuple[str, str], ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str

    def doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "matchers": dict(self.matchers),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
        }


class AlertmanagerSource:
    """One environment's Alertmanager: the alerts it last answered with, or why it did not."""

    def __init__(
        self, environment: str, config: AlarmSource, environ: Mapping[str, str] | None = None
    ) -> None:
        self.environment = environment
        self.config = config
        self.environ = os.environ if environ is None else environ
        self.shown_url = redact_url(config.url)
        self.alerts: list[AlarmStatus] = []
        self.error: str | None = None
        self.checked_at: float | None = None
        self.failing_since: float | None = None
        """When the reads began to fail (the unknown row's "since"); None while they succeed."""

    # ------------------------------------------------------------------------------------ reading

    async def refresh(self, client: httpx.AsyncClient, now: float) -> None:
        """Read the alerts once; a failure keeps the last firing ones and records why."""
        try:
            body = await self._request(client, "GET", "/api/v2/alerts", params=self._filters())
            self.alerts = parse_alerts(self.environment, body)
            self.error = None
        except AlarmSourceError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a read that cannot be understood is unknown, not a crash
            self.error = self._clean(f"{SOURCE} {self.shown_url}: {type(exc).__name__}: {exc}")
        if self.error is None:
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = now
        self.checked_at = now

    def statuses(self) -> list[AlarmStatus]:
        if self.error is None:
            return list(self.alerts)
        kept = [
            _with_reason(a, f"{a.reason} (last seen before {SOURCE} became unreachable)".strip())
            for a in self.alerts
            if a.state == FIRING
        ]
        down = AlarmStatus(
            name=SOURCE,
            environment=self.environment,
            state=UNKNOWN,
            severity=DEFAULT_SEVERITY,
            since=self.failing_since,
            value=None,
            reason=self.error,
            source_failed=True,
            source=SOURCE,
            key=f"{SOURCE}:{self.environment}:source",
        )
        return [down, *kept]

    # ------------------------------------------------------------------------------------ silences

    async def silences(self, client: httpx.AsyncClient) -> list[Silence]:
        body = await self._request(client, "GET", "/api/v2/silences", params=self._filters())
        if not isinstance(body, list):
            raise AlarmSourceError(f"{SOURCE} {self.shown_url}: silences are not a list")
        return [s for s in (_silence(item) for item in body) if s is not None]

    async def create_silence(
        self,
        client: httpx.AsyncClient,
        matchers: Sequence[tuple[str, str]],
        starts_at: float,
        ends_at: float,
        created_by: str,
        comment: str,
    ) -> str:
        doc = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers],
            "startsAt": _iso(starts_at),
            "endsAt": _iso(ends_at),
            "createdBy": created_by,
            "comment": comment,
        }
        body = await self._request(client, "POST", "/api/v2/silences", json=doc)
        silence_id = body.get("silenceID") if isinstance(body, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlarmSourceError(f"{SOURCE} {self.shown_url}: no silenceID in its answer")
        return silence_id

    async def expire_silence(self, client: httpx.AsyncClient, silence_id: str) -> None:
        if not silence_id or "/" in silence_id or len(silence_id) > 100:
            raise ValueError(f"not a silence id: {silence_id!r}")
        await self._request(client, "DELETE", f"/api/v2/silence/{silence_id}")

    # ------------------------------------------------------------------------------------ HTTP

    def _filters(self) -> list[tuple[str, str]]:
        return [("filter", f'{k}="{_quote(v)}"') for k, v in self.config.matchers]

    def _headers(self) -> dict[str, str]:
        cfg = self.config
        if cfg.bearer_token_env:
            token = self.environ.get(cfg.bearer_token_env)
            if not token:
                raise AlarmSourceError(f"{SOURCE}: bearer_token_env {cfg.bearer_token_env} is not set")
            return {"Authorization": f"Bearer {token}"}
        if cfg.basic_auth_env:
            pair = self.environ.get(cfg.basic_auth_env)
            if not pair or ":" not in pair:
                raise AlarmSourceError(
                    f"{SOURCE}: basic_auth_env {cfg.basic_auth_env} is not set to user:password"
                )
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        return {}

    async def _request(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
        import asyncio

        import httpx

        url = self.config.url + path
        shown = f"{SOURCE} {self.shown_url}"
        timeout = self.config.timeout
        headers = self._headers()
        try:
            resp = await asyncio.wait_for(
                client.request(method, url, headers=headers, timeout=timeout, **kwargs), timeout + 0.5
            )
        except (TimeoutError, httpx.TimeoutException):
            raise AlarmSourceError(f"{shown}: no answer within {timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise AlarmSourceError(self._clean(f"{shown}: {type(exc).__name__}: {exc}")) from None
        if resp.status_code >= 400:
            said = " ".join(resp.text[:200].split())
            raise AlarmSourceError(self._clean(f"{shown}: HTTP {resp.status_code} on {path}: {said}"))
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise AlarmSourceError(f"{shown}: the answer to {path} is not JSON") from None

    def _clean(self, text: str) -> str:
        """No credential in a message, even one the server echoed back."""
        text = redact_text(text)
        for var in (self.config.bearer_token_env, self.config.basic_auth_env):
            secret = self.environ.get(var) if var else None
            if secret:
                text = text.replace(secret, "***")
                text = text.replace(base64.b64encode(secret.encode()).decode(), "***")
        return text


# ---------------------------------------------------------------------------------------- parsing


def parse_alerts(environment: str, body: Any) -> list[AlarmStatus]:
    """`/api/v2/alerts` -> statuses; anything not shaped like its answer is an error, not "no alerts"."""
    if not isinstance(body, list):
        raise AlarmSourceError(f"{SOURCE}: alerts are not a list (got {type(body).__name__})")
    if len(body) > MAX_ALERTS:
        raise AlarmSourceError(f"{SOURCE}: {len(body)} alerts (more than {MAX_ALERTS}): check its matchers")
    out = []
    for item in body:
        status = _alert(environment, item)
        if status is None:
            raise AlarmSourceError(f"{SOURCE}: an alert without labels, status or fingerprint")
        out.append(status)
    return out


def _alert(environment: str, item: Any) -> AlarmStatus | None:
    if not isinstance(item, dict):
        return None
    labels, annotations, status = item.get("labels"), item.get("annotations") or {}, item.get("status")
    fingerprint = item.get("fingerprint")
    if not isinstance(labels, dict) or not isinstance(status, dict) or not isinstance(fingerprint, str):
        return None
    if not isinstance(annotations, dict):
        annotations = {}
    labels = {str(k): str(v) for k, v in labels.items()}
    annotations = {str(k): str(v) for k, v in annotations.items()}
    silenced_by = tuple(str(s) for s in status.get("silencedBy") or ())
    inhibited_by = tuple(str(s) for s in status.get("inhibitedBy") or ())
    if status.get("state") == "suppressed" and silenced_by:
        state, why = SILENCED, f"silenced by {', '.join(silenced_by)}"
    elif status.get("state") == "suppressed" and inhibited_by:
        state, why = INHIBITED, f"inhibited by {', '.join(inhibited_by)}"
    else:
        state, why = FIRING, ""  # active, or unprocessed: not yet judged, so not cleared either
    text = annotations.get("summary") or annotations.get("description") or ""
    reason = "; ".join(p for p in (" ".join(text.split()), why) if p)
    return AlarmStatus(
        name=labels.get("alertname") or "(no alertname)",
        environment=environment,
        state=state,
        severity=severity_of(labels),
        since=_epoch(item.get("startsAt")),
        value=None,
        reason=reason,
        source=SOURCE,
        key=f"{SOURCE}:{environment}:{fingerprint}",
        labels=tuple(sorted(labels.items())),
        annotations=tuple(sorted(annotations.items())),
        silenced_by=silenced_by,
    )


def _silence(item: Any) -> Silence | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        return None
    matchers = tuple(
        (str(m.get("name")), str(m.get("value"))) for m in item.get("matchers") or () if isinstance(m, dict)
    )
    status = item.get("status") or {}
    return Silence(
        id=item["id"],
        state=str(status.get("state", "")) if isinstance(status, dict) else "",
        matchers=matchers,
        starts_at=_epoch(item.get("startsAt")) or 0.0,
        ends_at=_epoch(item.get("endsAt")) or 0.0,
        created_by=str(item.get("createdBy", "")),
        comment=str(item.get("comment", "")),
    )


def _with_reason(a: AlarmStatus, reason: str) -> AlarmStatus:
    from dataclasses import replace

    return replace(a, reason=reason)


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    # Go writes nanoseconds; fromisoformat takes at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        value = dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
