"""A rollout's timeline for an incident record: every event, verdict, actor and reason, in order.

Built from the audit log (transitions, approvals, checklist ticks, the kill switch) and the verdict
history, so the report is exactly what the hash-chained record says happened.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..textsafe import visible
from .model import AuditEvent, GateVerdict, Plan, Rollout
from .units import iso_utc

if TYPE_CHECKING:
    from .improvements.model import Improvement


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return iso_utc(ts)


@dataclass
class Report:
    rollout: Rollout
    plan: Plan
    events: list[AuditEvent]
    verdicts: list[tuple[str, GateVerdict]]
    phases: list[dict[str, Any]] = field(default_factory=list)
    reaction_s: float | None = None
    improvements: list[dict[str, Any]] = field(default_factory=list)
    """What the improvement queues of the plan's environments did while the rollout ran."""

    def to_dict(self) -> dict[str, Any]:
        r = self.rollout
        return {
            "rollout": {
                "id": r.id,
                "plan": r.plan,
                "state": str(r.state),
                "started_by": r.started_by,
                "created_at": iso(r.created_at),
                "updated_at": iso(r.updated_at),
                "phase": self.plan.phases[min(r.phase_index, len(self.plan.phases) - 1)].name,
                "step_index": r.step_index,
                "reason": r.reason,
                "phases": self.phases,
            },
            "reaction_s": self.reaction_s,
            "timeline": [
                {
                    "seq": e.seq,
                    "at": iso(e.at),
                    "actor": e.actor,
                    "origin": e.origin,
                    "action": e.action,
                    **{k: v for k, v in e.data.items() if k != "verdicts"},
                }
                for e in self.events
            ],
            "verdicts": [{"phase": phase, **v.to_dict(), "at": iso(v.at)} for phase, v in self.verdicts],
            "improvements": self.improvements,
        }


def build(
    rollout: Rollout, plan: Plan, events: list[AuditEvent], verdicts: list[tuple[str, GateVerdict]]
) -> Report:
    rep = Report(rollout, plan, sorted(events, key=lambda e: e.seq), verdicts)
    rep.phases = _phases(plan, rep.events)
    rep.reaction_s = _reaction(rep.events, verdicts)
    return rep


def _phases(plan: Plan, events: list[AuditEvent]) -> list[dict[str, Any]]:
    """Each phase with the steps it went through and when, from the transitions."""
    out: dict[str, dict[str, Any]] = {
        p.name: {"name": p.name, "environment": p.environment, "state": "not reached", "steps": []}
        for p in plan.phases
    }
    open_step: dict[str, Any] | None = None
    for e in events:
        if e.action == "kill_switch.engage":
            if open_step is not None:
                open_step["ended_at"] = iso(e.at)
            continue
        if e.action != "rollout.transition":
            continue
        d = e.data
        phase = out.get(d.get("phase", ""))
        if phase is None:
            continue
        to = d.get("to")
        if to == "progressing" and (
            open_step is None or open_step["phase"] != d["phase"] or open_step["step"] != d["step"]
        ):
            if open_step is not None:
                open_step["ended_at"] = iso(e.at)
                if open_step["phase"] != d["phase"]:
                    out[open_step["phase"]]["state"] = "completed"
            open_step = {
                "phase": d["phase"],
                "step": d["step"],
                "percent": d["percent"],
                "started_at": iso(e.at),
                "ended_at": None,
            }
            phase["steps"].append(open_step)
            phase["state"] = "progressing"
        elif to in ("completed", "aborted", "rolled_back", "rolling_back"):
            if open_step is not None and open_step["ended_at"] is None:
                open_step["ended_at"] = iso(e.at)
            phase["state"] = to if to != "rolling_back" else "rolling_back"
        elif to in ("paused", "awaiting_approval"):
            phase["state"] = to
    for p in out.values():
        for s in p["steps"]:
            s.pop("phase", None)
            s.pop("step", None)
    return list(out.values())


def _reaction(events: list[AuditEvent], verdicts: list[tuple[str, GateVerdict]]) -> float | None:
    """Seconds from the first breaching measurement of the guard that caused a rollback to the
    rollback being applied (flag files written), or None when there was no automatic rollback."""
    start = next(
        (e for e in events if e.action == "rollout.transition" and e.data.get("to") == "rolling_back"), None
    )
    done = next(
        (e for e in events if e.action == "rollout.transition" and e.data.get("to") == "rolled_back"), None
    )
    if start is None or done is None or start.actor != "engine":
        return None
    reason = start.data.get("reason", "")
    first_fail: float | None = None
    for _phase, v in verdicts:
        if v.at > done.at or not reason.startswith(f"guard {v.gate} "):
            continue
        if v.status == "fail" and v.failures == 1:
            first_fail = v.at
    if first_fail is None:
        return None
    return round(done.at - first_fail, 3)


TITLE_LIMIT = 80
"""An improvement's title (the agent's text) is cut here in text and md reports."""


def improvement_entries(items: Iterable[Improvement], since: float, until: float) -> list[dict[str, Any]]:
    """The improvements decided, deployed or finished between `since` and `until`, as report rows."""
    out = []
    for i in items:
        times = [t for t in (i.decided_at, i.deployed_at, i.finished_at) if t is not None]
        if not any(since <= t <= until for t in times):
            continue
        out.append(
            {
                "environment": i.environment,
                "id": i.id,
                "title": i.proposal.title,
                "status": str(i.status),
                "reviewer": i.reviewer,
                "deployed_at": iso(i.deployed_at),
                "finished_at": iso(i.finished_at),
                "metric": i.metric,
                "baseline": i.baseline,
                "observed": i.observed,
                "evidence": i.evidence,
            }
        )
    return sorted(out, key=lambda e: (e["deployed_at"] or "~", e["id"]))


def render(rep: Report, fmt: str) -> str:
    """JSON keeps the data exact; text and md are for a terminal or an incident record."""
    if fmt == "json":
        return json.dumps(rep.to_dict(), indent=2)
    doc = rep.to_dict()
    r = doc["rollout"]
    md = fmt == "md"
    lines = []
    head = f"Rollout {r['id']} ({r['plan']}): {r['state']}"
    lines.append(f"# {head}" if md else head)
    lines.append(f"started by {r['started_by']} at {r['created_at']}; last: {r['reason']}")
    if rep.reaction_s is not None:
        lines.append(f"reaction: {rep.reaction_s:.3f} s from first breaching measurement to rollback applied")
    lines.append("")
    lines.append("## Phases" if md else "Phases:")
    for p in r["phases"]:
        steps = ", ".join(f"{s['percent']}%" for s in p["steps"]) or "-"
        lines.append(f"{'- ' if md else '  '}{p['name']} [{p['environment']}] {p['state']}: steps {steps}")
    lines.append("")
    lines.append("## Timeline" if md else "Timeline:")
    if md:
        lines.append("| # | time | actor | event | detail |")
        lines.append("|---|---|---|---|---|")
    for t in doc["timeline"]:
        detail = _detail(t)
        who = f"{t['actor']}@{t['origin']}"
        if md:
            lines.append(f"| {t['seq']} | {t['at']} | {who} | {t['action']} | {detail.replace('|', '/')} |")
        else:
            lines.append(f"  {t['seq']:>4} {t['at']} {who:<22} {t['action']:<20} {detail}")
    lines.append("")
    lines.append("## Verdicts" if md else "Verdict changes:")
    for v in doc["verdicts"]:
        lines.append(
            f"{'- ' if md else '  '}{v['at']} {v['phase']}/{v['gate']}: {v['status']} - {v['reason']}"
        )
    if doc["improvements"]:
        lines.append("")
        lines.append("## Improvements" if md else "Improvements decided or deployed meanwhile:")
        for i in doc["improvements"]:
            title = i["title"] if len(i["title"]) <= TITLE_LIMIT else i["title"][: TITLE_LIMIT - 1] + "…"
            outcome = f": {i['evidence']}" if i["evidence"] else ""
            lines.append(
                f"{'- ' if md else '  '}{i['environment']}/{i['id']} {i['status']} ({title}){outcome}"
            )
    # Every line is one line of data as a terminal shows it: controls and newlines in reasons are escaped.
    return "\n".join(visible(line) for line in lines) + "\n"


def _detail(t: dict[str, Any]) -> str:
    if t["action"] == "rollout.transition":
        return f"{t.get('from')} -> {t.get('to')} {t.get('phase')} {t.get('percent')}%: {t.get('reason')}"
    if t["action"] == "rollout.approval":
        extra = " (OVERRIDE)" if t.get("override") else ""
        return f"approved {t.get('phase')}{extra}: {t.get('reason')}"
    keys = [k for k in t if k not in ("seq", "at", "actor", "origin", "action")]
    return "; ".join(f"{k}={t[k]}" for k in keys)
