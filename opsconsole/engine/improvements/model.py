"""The improvement queue's records and settings: plain data, no I/O.

An item's life: `proposed -> approved | rejected -> deploying -> monitoring -> kept | rolled_back`,
and `failed` when the agent could not deploy it or could not roll it back (a failed rollback is never
recorded as rolled back: the change may still be live, and the record says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from .protocol import Proposal


class ImprovementStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    DEPLOYING = "deploying"
    MONITORING = "monitoring"
    KEPT = "kept"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


S = ImprovementStatus
TRANSITIONS: dict[ImprovementStatus, frozenset[ImprovementStatus]] = {
    S.PROPOSED: frozenset({S.APPROVED, S.REJECTED, S.DEPLOYING}),  # -> deploying: autonomous mode
    S.APPROVED: frozenset({S.DEPLOYING, S.REJECTED}),
    S.REJECTED: frozenset(),
    S.DEPLOYING: frozenset({S.MONITORING, S.FAILED}),
    S.MONITORING: frozenset({S.KEPT, S.ROLLED_BACK, S.FAILED}),
    S.KEPT: frozenset({S.ROLLED_BACK, S.FAILED}),  # "rollback all recent" reaches kept ones too
    S.ROLLED_BACK: frozenset(),
    S.FAILED: frozenset({S.ROLLED_BACK, S.FAILED}),  # a failed rollback may be tried again
}
LIVE = frozenset({S.DEPLOYING, S.MONITORING})
"""Counted against the concurrency limit."""
DEPLOYED = frozenset({S.MONITORING, S.KEPT, S.ROLLED_BACK})
"""Reached the system at some point (statistics' `deployed`)."""
ROLLBACKABLE = frozenset({S.DEPLOYING, S.MONITORING, S.KEPT, S.FAILED})
"""A person may ask for a rollback (FAILED: a deploy or a rollback that failed half-way)."""
SORT_ORDER = {
    s: i
    for i, s in enumerate(
        (S.MONITORING, S.DEPLOYING, S.FAILED, S.APPROVED, S.PROPOSED, S.KEPT, S.ROLLED_BACK, S.REJECTED)
    )
}
"""The pane's order: what needs eyes first."""


def can_move(before: ImprovementStatus, after: ImprovementStatus) -> bool:
    return after in TRANSITIONS[before]


@dataclass(frozen=True)
class Sample:
    at: float
    value: float | None
    """None: the source had no usable value at that time."""


@dataclass(frozen=True)
class Improvement:
    """One queue entry: the agent's proposal and everything the console decided and saw about it."""

    environment: str
    proposal: Proposal
    status: ImprovementStatus = S.PROPOSED
    source: Literal["agent", "file"] = "agent"
    proposed_at: float = 0.0
    """When the console first saw it."""
    updated_at: float = 0.0
    reviewer: str = ""
    """Who approved or rejected it (`autonomous` when the mode deployed it without a person)."""
    reason: str = ""
    """The reviewer's reason (kept when the item is later rolled back: why it was rolled back is in
    `evidence`, and in the audit log with who asked)."""
    override: bool = False
    """Approved by an admin although under the quality threshold or over the risk tolerance."""
    decided_at: float | None = None
    deployed_at: float | None = None
    monitor_until: float | None = None
    finished_at: float | None = None
    metric: str = ""
    """The query it is judged on (the proposal's, or the environment's default)."""
    better: Literal["lower", "higher"] = "lower"
    baseline: float | None = None
    """The metric's value taken just before the deploy."""
    observed: float | None = None
    """The metric's latest value while monitoring; its last value when the outcome was decided."""
    samples: tuple[Sample, ...] = ()
    """Values seen while monitoring, oldest first, capped (the chart's series)."""
    evidence: str = ""
    """Why it was kept, rolled back or failed, with the numbers."""
    error: str = ""
    """The last error talking to the agent about this item (kept until the next success)."""
    attempts: int = 0
    """Failed agent calls for the current step (backoff)."""
    next_attempt_at: float | None = None
    rollback_pending: str = ""
    """The reason of a rollback asked for (by a person or by the monitor) that the source has not
    confirmed yet: the queue tries it again with backoff until it succeeds."""
    version: int = 0
    """Compare-and-set: every write checks the version it read."""

    @property
    def id(self) -> str:
        return self.proposal.id

    @property
    def key(self) -> tuple[str, str]:
        return (self.environment, self.proposal.id)


@dataclass(frozen=True)
class TenantSettings:
    enabled: bool = True
    max_concurrent: int | None = None


@dataclass(frozen=True)
class AgentEndpoint:
    url: str
    token_env: str | None = None
    """The environment variable holding the bearer token; the token itself is never stored."""
    timeout: float = 10.0


@dataclass(frozen=True)
class ImprovementSettings:
    """One environment's `improvements:` section."""

    environment: str
    agent: AgentEndpoint | None = None
    proposals_file: str | None = None
    cycle_interval: float = 6 * 3600.0
    analysis_window_hours: float = 24.0
    max_improvements: int = 5
    quality_threshold: float = 0.85
    risk_tolerance: float = 0.10
    max_concurrent: int = 2
    monitoring: float = 1800.0
    rollback_threshold: float = 0.10
    """Relative degradation of the judged metric that rolls an improvement back (0.10: 10% worse)."""
    metric: str = ""
    """The default query improvements are judged on when a proposal names none."""
    better: Literal["lower", "higher"] = "lower"
    autonomous: bool = False
    """Autonomous mode: eligible proposals deploy without a person. Off: observation mode."""
    component_generation: bool = False
    tenants: dict[str, TenantSettings] = field(default_factory=dict)
    """Empty: every tenant is enabled. Otherwise a tenant not listed is disabled."""
    where: str = ""
    deploy_command: tuple[str, ...] = ()
    """With a proposals file: the argv that deploys an improvement (its id appended). Empty: a file
    source cannot deploy, and approved items wait with the error shown."""
    rollback_command: tuple[str, ...] = ()
    """With a proposals file: the argv that rolls an improvement back (its id and the reason
    appended)."""
    command_timeout: float = 60.0
    """How long deploy_command / rollback_command may run before the attempt counts as failed."""
