"""A workspace with an improvement queue, and proposals written into its real store.

The queue's records go into the engine's own store (`Tx.insert_improvements`), so the pane reads
what the engine reads. `seed_queue` builds `count` proposals in every status, with fixed times and
scores, so pictures and timings repeat; `HOSTILE` is a proposal whose title and description carry
Rich markup, an OSC title sequence, a clear-screen sequence, a very long line and a large payload.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

from opsconsole.engine.core import Engine
from opsconsole.engine.improvements.model import Improvement, ImprovementStatus, Sample
from opsconsole.engine.improvements.protocol import PredictedImpact, Proposal
from opsconsole.engine.improvements.state import SourceState, sync_key
from tests.integration.conftest import write_workspace

S = ImprovementStatus
NOW = 1_700_000_000.0
"""Every engine's clock in these tests: 2023-11-14 22:13:20 UTC."""
AGENT_URL = "http://127.0.0.1:9/mcp"
"""A closed port: nothing syncs in these tests (the runner is off)."""

IMPROVEMENTS = f"""
improvements:
  production:
    agent: {{url: "{AGENT_URL}"}}
    cycle_interval: 6h
    quality_threshold: 0.85
    risk_tolerance: 0.10
    max_concurrent: 2
    monitoring: 30m
    rollback_threshold: 0.10
    metric: quantile(0.95, http_request_duration_seconds) * 1000
    better: lower
    autonomous: false
    component_generation: false
  staging:
    agent: {{url: "{AGENT_URL}"}}
    quality_threshold: 0.90
    max_concurrent: 1
"""

HOSTILE_TITLE = "[red]Evil[/red] \x1b]0;pwned\x07 title \x1b[2J cleared"
HOSTILE_DESCRIPTION = (
    "[bold]not bold[/bold] and \x1b]0;window title\x07 then \x1b[2J clear\n"
    + "x" * 5_000
    + "\nsecond paragraph\n"
    + "payload " * 3_000
)

TITLES = (
    "Cache product lookups for 30 s",
    "Raise the connection pool from 20 to 40",
    "Batch writes to the order log",
    "Precompute the search facets nightly",
    "Lower the retry budget of the payment client",
    "Add a read replica for reporting",
    "Compress responses over 1 kB",
)
TENANTS = ("meetmind", "acme", "globex", "")
STATUSES = (S.PROPOSED, S.PROPOSED, S.PROPOSED, S.APPROVED, S.MONITORING, S.KEPT, S.ROLLED_BACK, S.REJECTED)


FILE_SOURCE = """
    proposals: "{proposals}"
    rollback_command: ["true"]
"""
"""Production's source instead of the agent: a proposals file whose rollback command succeeds."""


def improvements_workspace(tmp_path: Path, source: str = "agent") -> Path:
    """The console tests' workspace (production and staging) with a queue for production, fed by
    the agent at a closed port (`agent`: deploys and rollbacks fail as with an agent that is down)
    or by a proposals file whose rollback command succeeds (`file`)."""
    extra = textwrap.dedent(IMPROVEMENTS)
    if source == "file":
        proposals = tmp_path / "proposals.yaml"
        proposals.write_text("[]\n")
        agent = f'    agent: {{url: "{AGENT_URL}"}}\n'
        extra = extra.replace(agent, FILE_SOURCE.format(proposals=proposals).lstrip("\n"))
    return write_workspace(tmp_path, port=9, extra=extra)


def proposal(pid: str, title: str, quality: float, risk: float, tenant: str, **kw: object) -> Proposal:
    fields: dict[str, object] = dict(
        id=pid,
        title=title,
        description=f"{title}.\nThe agent saw the p95 latency of checkout rise at peak hours.",
        component="checkout",
        tenant=tenant,
        kind="tuning",
        impact=PredictedImpact("quantile(0.95, http_request_duration_seconds) * 1000", -0.2, "lower"),
        quality_score=quality,
        risk=risk,
        created_at=NOW - 3600,
        agent_status="proposed",
    )
    fields.update(kw)
    return Proposal(**fields)  # type: ignore[arg-type]


def queue_item(n: int, status: ImprovementStatus | None = None, env: str = "production") -> Improvement:
    """The n-th proposal of the seeded queue: scores, tenant and status follow from n."""
    status = status or STATUSES[n % len(STATUSES)]
    quality = round(0.99 - (n * 37 % 30) / 100, 2)
    risk = round((n * 7 % 12) / 100, 2)
    item = Improvement(
        environment=env,
        proposal=proposal(f"imp-{n:04d}", TITLES[n % len(TITLES)], quality, risk, TENANTS[n % len(TENANTS)]),
        status=status,
        proposed_at=NOW - 3000 + n,
        updated_at=NOW - 3000 + n,
        metric="quantile(0.95, http_request_duration_seconds) * 1000",
    )
    if status in (S.APPROVED, S.REJECTED, S.MONITORING, S.KEPT, S.ROLLED_BACK):
        item = replace(item, reviewer="alice", reason="looks right", decided_at=NOW - 2000)
    if status in (S.MONITORING, S.KEPT, S.ROLLED_BACK):
        samples = tuple(Sample(NOW - 600 + 20 * k, 180.0 - k * 1.5 + (k % 3) * 4) for k in range(30))
        item = replace(
            item,
            deployed_at=NOW - 600,
            monitor_until=NOW + 1200,
            baseline=180.0,
            observed=samples[-1].value,
            samples=samples,
        )
    if status is S.ROLLED_BACK:
        item = replace(item, evidence="p95 241 ms against a baseline of 180 ms: 34% worse, over 10%")
    return item


def hostile_item(env: str = "production") -> Improvement:
    return Improvement(
        environment=env,
        proposal=proposal("imp-evil", HOSTILE_TITLE, 0.99, 0.01, "acme", description=HOSTILE_DESCRIPTION),
        proposed_at=NOW - 10,
        updated_at=NOW - 10,
    )


def seed_queue(engine: Engine, items: list[Improvement]) -> None:
    """Write `items` into the engine's store, as a sync would."""
    with engine.store.transaction() as tx:
        tx.insert_improvements(items)


def queue(count: int) -> list[Improvement]:
    return [queue_item(n) for n in range(count)]


def agent_answered(engine: Engine, ago: float = 180.0, interval: float = 6 * 3600.0) -> None:
    """Record that production's agent answered a sync `ago` seconds before NOW, as the runner does
    after a sync (the tests' agent URL is a closed port, so no real sync can succeed)."""
    state = SourceState(
        agent_state="ok", last_sync_at=NOW - ago, last_attempt_at=NOW - ago, next_sync_at=NOW - ago + interval
    )
    with engine.store.transaction() as tx:
        tx.set_kv(sync_key("production"), state.dump(), NOW - ago)
