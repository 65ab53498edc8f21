"""The agent's tools: the one definition of what opsconsole sends and what it accepts back.

A self-building agent serves six MCP tools (streamable HTTP, a bearer token). An agent team builds
to this module; README.md ("Improvement agent protocol") documents the same shapes. A proposals file
holds a list of `Proposal` documents in the same shape (YAML or JSON), for teams without an agent.

Every result is untrusted input: `parse_*` checks each field's type and range and raises
`ProtocolError` naming the field (`improvements[3].quality_score: expected a number 0..1, got
'high'`) instead of letting a wrong type travel into the store. Text fields are kept as sent and
capped in size; escaping for the screen happens where text is shown.

Tool results are JSON objects, sent as MCP structured content (`structuredContent`) or, for agents
whose SDK cannot, as one text content block holding the JSON object.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypedDict

GET_SYSTEM_STATUS: Final = "get_system_status"
QUERY_TELEMETRY_INSIGHTS: Final = "query_telemetry_insights"
TRIGGER_IMPROVEMENT_CYCLE: Final = "trigger_improvement_cycle"
LIST_IMPROVEMENTS: Final = "list_improvements"
DEPLOY_IMPROVEMENT: Final = "deploy_improvement"
ROLLBACK_IMPROVEMENT: Final = "rollback_improvement"
TOOLS: Final = (
    GET_SYSTEM_STATUS,
    QUERY_TELEMETRY_INSIGHTS,
    TRIGGER_IMPROVEMENT_CYCLE,
    LIST_IMPROVEMENTS,
    DEPLOY_IMPROVEMENT,
    ROLLBACK_IMPROVEMENT,
)

KINDS: Final = ("tuning", "new_component")
"""`tuning` changes settings of something that exists; `new_component` adds code or a service (refused
while component generation is off)."""

BETTER: Final = ("lower", "higher")
"""Which direction of the judged metric is an improvement (latency: lower; throughput: higher)."""

MAX_ID = 128
MAX_TITLE = 200
MAX_TEXT = 20_000
MAX_NAME = 200
MAX_ITEMS = 10_000
"""A list longer than this is refused as a whole: a runaway agent must not fill the store."""


# ------------------------------------------------------------------------------------ arguments


class GetSystemStatusArgs(TypedDict):
    pass


class QueryTelemetryInsightsArgs(TypedDict):
    time_range_hours: float


class TriggerImprovementCycleArgs(TypedDict):
    analysis_window_hours: float
    max_improvements: int


class ListImprovementsArgs(TypedDict, total=False):
    since_hours: float
    """Only improvements created or changed in the last N hours; absent: all the agent keeps."""


class DeployImprovementArgs(TypedDict):
    improvement_id: str


class RollbackImprovementArgs(TypedDict):
    improvement_id: str
    reason: str


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class PredictedImpact:
    metric: str
    """What the improvement is judged on: a query in the environment's metric source language
    (`quantile(0.95, http_request_duration_seconds) * 1000`). Empty: the environment's default."""
    expected_change: float
    """Relative change the agent predicts: -0.2 is 20% lower, 0.1 is 10% higher."""
    better: Literal["lower", "higher"] = "lower"


@dataclass(frozen=True)
class Proposal:
    """One improvement as the agent (or a proposals file) describes it."""

    id: str
    title: str
    description: str
    component: str
    tenant: str
    kind: Literal["tuning", "new_component"]
    impact: PredictedImpact
    quality_score: float
    """0..1, the agent's confidence that the change is good."""
    risk: float
    """0..1, the agent's estimate of how much can go wrong."""
    created_at: float | None = None
    """POSIX seconds, when the agent proposed it."""
    agent_status: str = ""
    """What the agent says about it (`proposed`, `deployed`, `rolled_back`, ...): shown, never
    trusted over the console's own record."""


@dataclass(frozen=True)
class SystemStatus:
    status: str
    """`ok`, `degraded`, `down` or the agent's own word."""
    version: str = ""
    message: str = ""
    active_improvements: int = 0
    last_cycle_at: float | None = None


@dataclass(frozen=True)
class Insight:
    metric: str
    summary: str
    value: float | None = None
    baseline: float | None = None


@dataclass(frozen=True)
class TelemetryInsights:
    insights: tuple[Insight, ...] = ()


@dataclass(frozen=True)
class CycleResult:
    cycle_id: str
    proposals: tuple[Proposal, ...] = ()


@dataclass(frozen=True)
class ImprovementList:
    improvements: tuple[Proposal, ...] = ()


@dataclass(frozen=True)
class ActionResult:
    """The answer to deploy_improvement and rollback_improvement."""

    improvement_id: str
    ok: bool
    """True when the agent did it; False with `message` saying why not."""
    message: str = ""
    status: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


class ProtocolError(ValueError):
    """A result (or a proposals file) that does not have the documented shape; the message names
    the field."""


# ------------------------------------------------------------------------------------ parsing


def parse_proposal(doc: object, where: str = "proposal") -> Proposal:
    d = _mapping(doc, where)
    impact = _mapping(d.get("predicted_impact", {}), f"{where}.predicted_impact")
    better = _text(impact, "better", f"{where}.predicted_impact", MAX_NAME, default="lower")
    if better not in BETTER:
        raise ProtocolError(f"{where}.predicted_impact.better: expected 'lower' or 'higher', got {better!r}")
    kind = _text(d, "kind", where, MAX_NAME, default="tuning")
    if kind not in KINDS:
        raise ProtocolError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {_short(kind)!r}")
    return Proposal(
        id=_ident(d, "id", where),
        title=_text(d, "title", where, MAX_TITLE),
        description=_text(d, "description", where, MAX_TEXT, default=""),
        component=_text(d, "component", where, MAX_NAME, default=""),
        tenant=_text(d, "tenant", where, MAX_NAME, default=""),
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        impact=PredictedImpact(
            metric=_text(impact, "metric", f"{where}.predicted_impact", MAX_TEXT, default=""),
            expected_change=_number(impact, "expected_change", f"{where}.predicted_impact", default=0.0),
            better=better,  # type: ignore[arg-type]  # checked against BETTER above
        ),
        quality_score=_unit(d, "quality_score", where),
        risk=_unit(d, "risk", where),
        created_at=_optional_number(d, "created_at", where),
        agent_status=_text(d, "status", where, MAX_NAME, default=""),
    )


def parse_proposals(items: object, where: str) -> tuple[Proposal, ...]:
    """A list of proposals; duplicate ids are refused (which of the two would be right?)."""
    if not isinstance(items, list):
        raise ProtocolError(f"{where}: expected a list, got {_type(items)}")
    if len(items) > MAX_ITEMS:
        raise ProtocolError(f"{where}: {len(items)} items, more than the {MAX_ITEMS} accepted at once")
    out = tuple(parse_proposal(item, f"{where}[{i}]") for i, item in enumerate(items))
    seen: dict[str, int] = {}
    for i, p in enumerate(out):
        if p.id in seen:
            raise ProtocolError(f"{where}[{i}].id: {_short(p.id)!r} repeats {where}[{seen[p.id]}].id")
        seen[p.id] = i
    return out


def parse_system_status(doc: object) -> SystemStatus:
    d = _mapping(doc, GET_SYSTEM_STATUS)
    active = _optional_number(d, "active_improvements", GET_SYSTEM_STATUS)
    return SystemStatus(
        status=_text(d, "status", GET_SYSTEM_STATUS, MAX_NAME),
        version=_text(d, "version", GET_SYSTEM_STATUS, MAX_NAME, default=""),
        message=_text(d, "message", GET_SYSTEM_STATUS, MAX_TEXT, default=""),
        active_improvements=int(active) if active is not None else 0,
        last_cycle_at=_optional_number(d, "last_cycle_at", GET_SYSTEM_STATUS),
    )


def parse_insights(doc: object) -> TelemetryInsights:
    where = QUERY_TELEMETRY_INSIGHTS
    d = _mapping(doc, where)
    items = d.get("insights", [])
    if not isinstance(items, list):
        raise ProtocolError(f"{where}.insights: expected a list, got {_type(items)}")
    out = []
    for i, item in enumerate(items[:MAX_ITEMS]):
        e = _mapping(item, f"{where}.insights[{i}]")
        out.append(
            Insight(
                metric=_text(e, "metric", f"{where}.insights[{i}]", MAX_TEXT),
                summary=_text(e, "summary", f"{where}.insights[{i}]", MAX_TEXT, default=""),
                value=_optional_number(e, "value", f"{where}.insights[{i}]"),
                baseline=_optional_number(e, "baseline", f"{where}.insights[{i}]"),
            )
        )
    return TelemetryInsights(tuple(out))


def parse_cycle(doc: object) -> CycleResult:
    d = _mapping(doc, TRIGGER_IMPROVEMENT_CYCLE)
    return CycleResult(
        cycle_id=_text(d, "cycle_id", TRIGGER_IMPROVEMENT_CYCLE, MAX_ID, default=""),
        proposals=parse_proposals(d.get("proposals", []), f"{TRIGGER_IMPROVEMENT_CYCLE}.proposals"),
    )


def parse_list(doc: object) -> ImprovementList:
    d = _mapping(doc, LIST_IMPROVEMENTS)
    if "improvements" not in d:
        raise ProtocolError(f"{LIST_IMPROVEMENTS}.improvements: missing")
    return ImprovementList(parse_proposals(d["improvements"], f"{LIST_IMPROVEMENTS}.improvements"))


def parse_action(doc: object, tool: str, improvement_id: str) -> ActionResult:
    d = _mapping(doc, tool)
    ok = d.get("ok")
    if not isinstance(ok, bool):
        raise ProtocolError(f"{tool}.ok: expected true or false, got {_type(ok)}")
    got = _text(d, "improvement_id", tool, MAX_ID, default=improvement_id)
    if got != improvement_id:
        raise ProtocolError(
            f"{tool}.improvement_id: asked for {improvement_id!r}, the answer is about {_short(got)!r}"
        )
    details = d.get("details", {})
    return ActionResult(
        improvement_id=got,
        ok=ok,
        message=_text(d, "message", tool, MAX_TEXT, default=""),
        status=_text(d, "status", tool, MAX_NAME, default=""),
        details=dict(details) if isinstance(details, Mapping) else {},
    )


def proposal_document(p: Proposal) -> dict[str, Any]:
    """`p` in the wire shape (what an agent sends, what a proposals file holds)."""
    doc: dict[str, Any] = {
        "id": p.id,
        "title": p.title,
        "description": p.description,
        "component": p.component,
        "tenant": p.tenant,
        "kind": p.kind,
        "predicted_impact": {
            "metric": p.impact.metric,
            "expected_change": p.impact.expected_change,
            "better": p.impact.better,
        },
        "quality_score": p.quality_score,
        "risk": p.risk,
    }
    if p.created_at is not None:
        doc["created_at"] = p.created_at
    if p.agent_status:
        doc["status"] = p.agent_status
    return doc


# ------------------------------------------------------------------------------------ field checks


def _mapping(doc: object, where: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise ProtocolError(f"{where}: expected an object, got {_type(doc)}")
    return doc


def _text(d: Mapping[str, Any], key: str, where: str, limit: int, default: str | None = None) -> str:
    value = d.get(key, default)
    if value is None:
        raise ProtocolError(f"{where}.{key}: missing")
    if not isinstance(value, str):
        raise ProtocolError(f"{where}.{key}: expected text, got {_type(value)}")
    # Capped, not refused: a long description is the agent's style, not an error. The cap keeps one
    # proposal from filling the store or the screen.
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _ident(d: Mapping[str, Any], key: str, where: str) -> str:
    value = d.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError(f"{where}.{key}: expected a non-empty id, got {_type(value)}")
    if len(value) > MAX_ID or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ProtocolError(f"{where}.{key}: ids are up to {MAX_ID} printable characters without spaces")
    return value


def _number(d: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtocolError(f"{where}.{key}: expected a number, got {_type(value)}")
    return float(value)


def _optional_number(d: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if d.get(key) is None else _number(d, key, where)


def _unit(d: Mapping[str, Any], key: str, where: str) -> float:
    value = _number(d, key, where)
    if not 0.0 <= value <= 1.0:
        raise ProtocolError(f"{where}.{key}: expected a number 0..1, got {value}")
    return value


def _type(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"text {_short(value)!r}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, Sequence):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
