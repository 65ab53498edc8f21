"""The rollout state machine. Pure: (plan, rollout, event, now) -> Decision(rollout, actions, records).

States: pending -> progressing <-> paused -> awaiting_approval -> progressing ... -> completed, and from
any active state aborted, or rolling_back -> rolled_back. The runner and the commands both come through
`decide`, so the console, the CLI and the background loop can never disagree about what a rollout may do.

Rules worth knowing:
- Steps advance when their wait is over and no guard fails or lacks data. At a 0% step nothing is
  exposed, so a guard whose source answers but has no series yet does not hold progress (there is
  no canary traffic to measure); a guard whose source fails holds at every step, 0% included: a
  rollout never promotes blind.
- A phase ends at its last step when every gate passes and, if required, approvals are given.
- A breached guard (failure_limit consecutive failures) or an escalated unknown rolls back, also while
  paused or awaiting approval: users are exposed in those states too.
- The person who started a rollout cannot be its only approver; approving over failing gates needs
  admin and is recorded as an override.
- A phase with `backup_before` is entered in two moves: first it is current but not started
  (`awaiting_backup`: no flag written, no gate checked) while the runner takes and verifies the
  backup; BackupDone(ok) starts it, a failed one pauses the rollout with the reason. Resume retries
  the backup; abort and rollback work as anywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .model import (
    ACTIVE_STATES,
    ENGINE_ACTOR,
    Actor,
    ApprovalRecord,
    ChecklistTick,
    FlagValue,
    GateVerdict,
    Phase,
    Plan,
    Role,
    Rollout,
    RolloutState,
    Verdict,
)

S = RolloutState


class Rejected(Exception):
    """A command the rollout's state or the rules do not allow; the message says why."""


# ------------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class Evaluate:
    """The runner's periodic check: latest verdicts of the current phase's gates and guards."""

    gates: tuple[GateVerdict, ...] = ()
    guards: tuple[GateVerdict, ...] = ()


@dataclass(frozen=True)
class Command:
    """A person's command. `kind`: pause, resume, promote, abort, rollback."""

    kind: str
    actor: Actor
    reason: str


@dataclass(frozen=True)
class Approve:
    actor: Actor
    role: Role
    reason: str
    override: bool = False


@dataclass(frozen=True)
class Tick:
    """A checklist item ticked by a named person."""

    actor: Actor
    item: str


@dataclass(frozen=True)
class RollbackDone:
    """The runner applied the rollback's flag changes."""


@dataclass(frozen=True)
class BackupDone:
    """The runner's `backup_before` backup of the current (not started) phase: taken and verified
    (`ok`), or failed with `reason`. `run` is the backup run's id ("" when none was recorded)."""

    run: str
    ok: bool
    reason: str = ""


Event = Evaluate | Command | Approve | Tick | RollbackDone | BackupDone


# ------------------------------------------------------------------------------------------ actions


@dataclass(frozen=True)
class SetFlags:
    """Write these flag values in an environment. `remember`: keep the previous values so a rollback
    can restore them."""

    environment: str
    values: dict[str, FlagValue]
    remember: bool = True


@dataclass(frozen=True)
class Notify:
    event: str  # approval_needed | rollback | inconclusive | completed | backup_failed
    message: str


Action = SetFlags | Notify


@dataclass(frozen=True)
class Record:
    """One audit event the decision produces."""

    action: str
    actor: Actor
    data: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    rollout: Rollout
    actions: tuple[Action, ...] = ()
    records: tuple[Record, ...] = ()


@dataclass
class _Builder:
    """Accumulates one decision; keeps `decide` readable."""

    plan: Plan
    r: Rollout
    now: float
    actions: list[Action] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    def move(self, to: RolloutState, actor: Actor, reason: str, **extra: Any) -> None:
        before = self.r
        self.r = replace(self.r, state=to, reason=reason, updated_at=self.now, **extra)
        phase = self.plan.phases[min(self.r.phase_index, len(self.plan.phases) - 1)]
        self.records.append(
            Record(
                "rollout.transition",
                actor,
                {
                    "from": str(before.state),
                    "to": str(to),
                    "phase": phase.name,
                    "step": self.r.step_index,
                    "percent": step_percent(self.plan, self.r),
                    "reason": reason,
                    "verdicts": [v.to_dict() for v in before.verdicts],
                },
            )
        )

    def done(self) -> Decision:
        return Decision(self.r, tuple(self.actions), tuple(self.records))


# ------------------------------------------------------------------------------------------ helpers


_ALLOWED: dict[RolloutState, frozenset[str]] = {
    S.PENDING: frozenset({"pause", "abort", "rollback", "tick_checklist"}),
    S.PROGRESSING: frozenset({"promote", "pause", "abort", "rollback", "tick_checklist"}),
    S.PAUSED: frozenset({"resume", "abort", "rollback", "tick_checklist"}),
    S.AWAITING_APPROVAL: frozenset({"approve", "pause", "abort", "rollback", "tick_checklist"}),
}


def allowed_commands(state: RolloutState | str) -> frozenset[str]:
    """The commands a rollout in `state` accepts: approve, promote, pause, resume, abort, rollback,
    tick_checklist. The console offers exactly these (others show disabled); `decide` refuses the
    rest. Whether an allowed command then succeeds still depends on the rollout (promote needs its
    guards to pass, approve the right person). Rolling back and finished rollouts accept none."""
    try:
        return _ALLOWED.get(RolloutState(state), frozenset())
    except ValueError:
        return frozenset()


def current_phase(plan: Plan, r: Rollout) -> Phase:
    return plan.phases[min(r.phase_index, len(plan.phases) - 1)]


def step_percent(plan: Plan, r: Rollout) -> int:
    steps = current_phase(plan, r).steps
    return steps[min(r.step_index, len(steps) - 1)]


def distinct_approvers(r: Rollout) -> set[str]:
    return {a.user for a in r.approvals}


def approvals_satisfied(phase: Phase, r: Rollout) -> bool:
    if not phase.approval.required:
        return True
    users = distinct_approvers(r)
    return len(users) >= phase.approval.distinct_approvers and bool(users - {r.started_by})


def approvals_missing(phase: Phase, r: Rollout) -> str:
    users = distinct_approvers(r)
    need = phase.approval.distinct_approvers
    if len(users) < need:
        return f"{len(users)} of {need} approvals"
    return f"needs an approver other than {r.started_by}, who started the rollout"


def _phase_entry_flags(phase: Phase) -> dict[str, FlagValue]:
    values: dict[str, FlagValue] = dict(phase.flags)
    if phase.strategy is not None and phase.strategy.kind == "canary" and phase.strategy.flag:
        values[phase.strategy.flag] = phase.steps[0]
    return values


def backup_reason(r: Rollout, phase: Phase) -> str:
    """What a `backup_before` run is recorded with: it names the rollout and the phase, and is how
    a restarted runner finds the backup an earlier one took for this phase (never a second one)."""
    return f"before phase {phase.name} of rollout {r.id}"


def _enter_phase(b: _Builder, index: int, actor: Actor, reason: str, *, backed_up: bool = False) -> None:
    phase = b.plan.phases[index]
    if phase.backup_before and not backed_up:
        b.r = replace(
            b.r,
            phase_index=index,
            step_index=0,
            phase_started_at=b.now,
            step_started_at=b.now,
            approvals=(),
            checklist=(),
            memory={},
            verdicts=(),
            awaiting_backup=True,
        )
        b.move(
            S.PROGRESSING,
            actor,
            f"{reason}; phase {phase.name} waits for its backup of {phase.backup_before}",
        )
        return
    b.r = replace(
        b.r,
        phase_index=index,
        step_index=0,
        phase_started_at=b.now,
        step_started_at=b.now,
        approvals=(),
        checklist=(),
        memory={},
        verdicts=(),
        awaiting_backup=False,
    )
    b.move(S.PROGRESSING, actor, reason)
    values = _phase_entry_flags(phase)
    if values:
        b.actions.append(SetFlags(phase.environment, values))


def _stop_traffic(plan: Plan, r: Rollout) -> list[Action]:
    """Abort: send traffic back to the stable version (the canary flag to 0)."""
    if r.awaiting_backup:
        return []  # the phase never started: its canary flag was never written
    phase = current_phase(plan, r)
    if phase.strategy is not None and phase.strategy.kind == "canary" and phase.strategy.flag:
        return [SetFlags(phase.environment, {phase.strategy.flag: 0}, remember=False)]
    return []


def _restore_all(plan: Plan, r: Rollout) -> list[Action]:
    """Rollback: every flag the rollout changed goes back to its value before, canaries to 0."""
    actions: list[Action] = _stop_traffic(plan, r)
    for env, values in r.flag_restore.items():
        if values:
            actions.append(SetFlags(env, dict(values), remember=False))
    return actions


def _begin_rollback(b: _Builder, actor: Actor, reason: str) -> None:
    b.move(S.ROLLING_BACK, actor, reason)
    b.actions.extend(_restore_all(b.plan, b.r))
    b.actions.append(Notify("rollback", f"rollout {b.r.id} ({b.plan.name}) rolling back: {reason}"))


def _guard_trouble(plan: Plan, r: Rollout, guards: Sequence[GateVerdict]) -> tuple[str, str] | None:
    """('rollback'|'pause'|'hold', reason) for the first guard that stops progress, worst first."""
    for v in guards:
        if v.breached:
            return "rollback", f"guard {v.gate} breached: {v.reason}"
        if v.escalate:
            return "rollback", f"guard {v.gate} without data past escalate_after: {v.reason}"
    for v in guards:
        if v.inconclusive:
            return "pause", f"guard {v.gate} inconclusive: {v.reason}"
    percent = step_percent(plan, r)
    for v in guards:
        if v.status is Verdict.FAIL:
            return "hold", f"guard {v.gate} failing ({v.failures} of {v.failure_limit}): {v.reason}"
        if v.status is Verdict.UNKNOWN and not v.no_series:
            return "hold", f"guard {v.gate} source failed, holding at {percent}%: {v.reason}"
        if v.status is Verdict.UNKNOWN and percent > 0:
            return "hold", f"guard {v.gate} has no data: {v.reason}"
    return None


def _allowed_without_data(plan: Plan, r: Rollout, guards: Sequence[GateVerdict]) -> str:
    """What a 0% step lets through (guards whose source has no canary series yet), said in the
    reason so that nobody reads the step as "guards passing"; "" when there is nothing to say."""
    names = [v.gate for v in guards if v.status is Verdict.UNKNOWN and v.no_series]
    if not names or step_percent(plan, r) > 0:
        return ""
    return f"guard {', '.join(names)}: no canary traffic yet at 0%: allowed"


def _gate_trouble(gates: Sequence[GateVerdict]) -> tuple[str, str] | None:
    for v in gates:
        if v.escalate and v.status is Verdict.UNKNOWN:
            return "rollback", f"gate {v.gate} without data past escalate_after: {v.reason}"
    for v in gates:
        if v.inconclusive:
            return "pause", f"gate {v.gate} inconclusive: {v.reason}"
    order = {Verdict.FAIL: 0, Verdict.UNKNOWN: 1, Verdict.PENDING: 2}
    blocking = sorted((v for v in gates if v.status is not Verdict.PASS), key=lambda v: order[v.status])
    if blocking:
        v = blocking[0]
        return "hold", f"gate {v.gate} {v.status}: {v.reason}"
    return None


def _finish_phase(b: _Builder, actor: Actor, reason: str) -> None:
    if b.r.phase_index + 1 < len(b.plan.phases):
        _enter_phase(b, b.r.phase_index + 1, actor, reason)
    else:
        b.move(S.COMPLETED, actor, reason)
        b.actions.append(Notify("completed", f"rollout {b.r.id} ({b.plan.name}) completed"))


def _advance(b: _Builder, actor: Actor, *, manual: bool) -> str | None:
    """Try to move one step (or end the phase). Returns why not, or None when it moved."""
    phase = current_phase(b.plan, b.r)
    guards = [v for v in b.r.verdicts if v.gate in _names(phase.guards)]
    guard = _guard_trouble(b.plan, b.r, guards)
    if guard is not None:
        return guard[1]
    allowed = _allowed_without_data(b.plan, b.r, guards)
    steps = phase.steps
    wait = phase.strategy.step_wait if phase.strategy is not None else 0.0
    left = wait - (b.now - b.r.step_started_at)
    last = b.r.step_index >= len(steps) - 1
    if not last:
        if left > 0 and not manual:
            waiting = f"step {steps[b.r.step_index]}% waits {left:.0f}s more"
            return f"{waiting}; {allowed}" if allowed else waiting
        nxt = b.r.step_index + 1
        b.r = replace(b.r, step_index=nxt, step_started_at=b.now)
        how = "promoted" if manual else f"wait over; {allowed}" if allowed else "wait over, guards passing"
        b.move(S.PROGRESSING, actor, f"step {steps[nxt - 1]}% -> {steps[nxt]}% ({how})")
        if phase.strategy is not None and phase.strategy.flag:
            b.actions.append(SetFlags(phase.environment, {phase.strategy.flag: steps[nxt]}))
        return None
    if left > 0 and not manual:
        return f"last step waits {left:.0f}s more"
    gates = [v for v in b.r.verdicts if v.gate in _names(phase.gates)]
    if len(gates) < len(phase.gates):
        return "gates not evaluated yet"
    trouble = _gate_trouble(gates)
    if trouble is not None:
        return trouble[1]
    if not approvals_satisfied(phase, b.r):
        if b.r.state is not S.AWAITING_APPROVAL:
            b.move(S.AWAITING_APPROVAL, actor, f"phase {phase.name} gates pass; awaiting approval")
            b.actions.append(
                Notify(
                    "approval_needed", f"rollout {b.r.id} ({b.plan.name}) phase {phase.name} needs approval"
                )
            )
        return None
    _finish_phase(b, actor, f"phase {phase.name} complete: gates pass")
    return None


def _names(specs: Sequence[Any]) -> set[str]:
    return {s.name for s in specs}


# ------------------------------------------------------------------------------------------ decide


def new_rollout(plan: Plan, rollout_id: str, actor: Actor, now: float, reason: str) -> Decision:
    """A rollout is created pending; the runner's first evaluation starts its first phase."""
    r = Rollout(
        id=rollout_id,
        plan=plan.name,
        state=S.PENDING,
        started_by=actor.user,
        created_at=now,
        phase_started_at=now,
        step_started_at=now,
        reason=reason or "created",
        updated_at=now,
    )
    rec = Record(
        "rollout.start", actor, {"plan": plan.name, "reason": reason, "phases": [p.name for p in plan.phases]}
    )
    return Decision(r, (), (rec,))


def decide(plan: Plan, r: Rollout, event: Event, now: float) -> Decision:
    """Apply one event. Raises Rejected for commands the state or rules refuse."""
    b = _Builder(plan, r, now)
    if isinstance(event, Evaluate):
        _on_evaluate(b, event)
    elif isinstance(event, Approve):
        _on_approve(b, event)
    elif isinstance(event, Command):
        _on_command(b, event)
    elif isinstance(event, Tick):
        _on_tick(b, event)
    elif isinstance(event, BackupDone):
        _on_backup_done(b, event)
    elif isinstance(event, RollbackDone) and r.state is S.ROLLING_BACK:
        # Keep why it rolled back in the rollout's reason: "rollback applied" alone tells nobody anything.
        b.move(S.ROLLED_BACK, ENGINE_ACTOR, f"rolled back: {r.reason}")
    return b.done()


def _on_backup_done(b: _Builder, ev: BackupDone) -> None:
    """Only a rollout still waiting (progressing) for the backup takes the outcome: one aborted,
    paused or killed meanwhile ignores it."""
    r = b.r
    if r.state is not S.PROGRESSING or not r.awaiting_backup:
        return
    phase = current_phase(b.plan, r)
    target = phase.backup_before or ""
    b.records.append(
        Record(
            "rollout.backup",
            ENGINE_ACTOR,
            {"phase": phase.name, "target": target, "run": ev.run, "ok": ev.ok, "reason": ev.reason},
        )
    )
    if ev.ok:
        _enter_phase(
            b,
            r.phase_index,
            ENGINE_ACTOR,
            f"backup {ev.run} of {target} verified; started phase {phase.name}",
            backed_up=True,
        )
        return
    why = f"backup before phase {phase.name} failed: {ev.reason or 'no reason given'}"
    b.move(
        S.PAUSED, ENGINE_ACTOR, f"{why}; resume retries it, abort ends the rollout", paused_from=S.PROGRESSING
    )
    b.actions.append(Notify("backup_failed", f"rollout {r.id} ({b.plan.name}) held: {why}"))


def _on_evaluate(b: _Builder, ev: Evaluate) -> None:
    if b.r.state not in ACTIVE_STATES or b.r.state is S.ROLLING_BACK:
        return
    if b.r.awaiting_backup:
        return  # the phase has not started: nothing of it to evaluate
    engine = ENGINE_ACTOR
    if b.r.state is S.PENDING:
        _enter_phase(b, 0, engine, f"started phase {b.plan.phases[0].name}")
        return
    b.r = replace(b.r, verdicts=tuple(ev.gates) + tuple(ev.guards))
    guard = _guard_trouble(b.plan, b.r, ev.guards)
    gate = _gate_trouble(ev.gates)
    for trouble in (guard, gate):
        if trouble is not None and trouble[0] == "rollback":
            _begin_rollback(b, engine, trouble[1])
            return
    if b.r.state is S.PAUSED:
        return
    for trouble in (guard, gate):
        if trouble is not None and trouble[0] == "pause":
            b.move(S.PAUSED, engine, trouble[1], paused_from=b.r.state)
            b.actions.append(Notify("inconclusive", f"rollout {b.r.id} paused: {trouble[1]}"))
            return
    if b.r.state is S.AWAITING_APPROVAL:
        return
    why = _advance(b, engine, manual=False)
    if why is not None and why != b.r.reason:
        # The "why" line changes without a state change: keep it on the rollout, not in the audit log.
        b.r = replace(b.r, reason=why)


def _on_command(b: _Builder, c: Command) -> None:
    st = b.r.state
    if st not in ACTIVE_STATES:
        raise Rejected(f"rollout {b.r.id} is {st}; nothing to {c.kind}")
    if c.kind == "pause":
        if st in (S.PAUSED, S.ROLLING_BACK):
            raise Rejected(f"rollout {b.r.id} is {st}; it cannot be paused")
        b.move(S.PAUSED, c.actor, c.reason or "paused", paused_from=st)
    elif c.kind == "resume":
        if st is not S.PAUSED:
            raise Rejected(f"rollout {b.r.id} is {st}, not paused")
        back = b.r.paused_from if b.r.paused_from in (S.PROGRESSING, S.AWAITING_APPROVAL) else S.PROGRESSING
        if b.r.awaiting_backup:
            phase = current_phase(b.plan, b.r)
            retry = f"retrying the backup of {phase.backup_before} before phase {phase.name}"
            b.move(S.PROGRESSING, c.actor, f"{c.reason}: {retry}" if c.reason else retry, paused_from=None)
            return
        b.move(back, c.actor, c.reason or "resumed", paused_from=None, step_started_at=b.now)
    elif c.kind == "promote":
        if st is S.AWAITING_APPROVAL:
            raise Rejected(
                f"rollout {b.r.id} is awaiting approval: {approvals_missing(current_phase(b.plan, b.r), b.r)}"
            )
        if st is not S.PROGRESSING:
            raise Rejected(f"rollout {b.r.id} is {st}; only a progressing rollout can be promoted")
        if b.r.awaiting_backup:
            phase = current_phase(b.plan, b.r)
            raise Rejected(
                f"phase {phase.name} has not started: it waits for its backup of {phase.backup_before}"
            )
        why = _advance(b, c.actor, manual=True)
        if why is not None:
            raise Rejected(f"cannot promote: {why}")
    elif c.kind == "abort":
        if st is S.ROLLING_BACK:
            raise Rejected(f"rollout {b.r.id} is already rolling back")
        b.move(S.ABORTED, c.actor, c.reason or "aborted")
        b.actions.extend(_stop_traffic(b.plan, b.r))
    elif c.kind == "rollback":
        if st is S.ROLLING_BACK:
            raise Rejected(f"rollout {b.r.id} is already rolling back")
        _begin_rollback(b, c.actor, c.reason or "rollback requested")
    else:
        raise Rejected(f"unknown command {c.kind!r}")


def _on_approve(b: _Builder, a: Approve) -> None:
    r = b.r
    phase = current_phase(b.plan, r)
    if r.state is not S.AWAITING_APPROVAL:
        raise Rejected(f"rollout {r.id} is {r.state}; approval is given when it awaits approval")
    if not a.reason.strip():
        raise Rejected("an approval needs a reason")
    needed = phase.approval.role
    if a.role < needed:
        raise Rejected(f"{a.actor.user} is {a.role.name.lower()}; approving needs {needed.name.lower()}")
    if a.actor.user in distinct_approvers(r):
        raise Rejected(f"{a.actor.user} already approved phase {phase.name}")
    if a.actor.user == r.started_by and phase.approval.distinct_approvers <= 1:
        raise Rejected(f"{a.actor.user} started this rollout and cannot be its only approver")
    gates = [v for v in r.verdicts if v.gate in _names(phase.gates)]
    guards = [v for v in r.verdicts if v.gate in _names(phase.guards)]
    failing = [v for v in gates if v.status is not Verdict.PASS] + [
        v for v in guards if v.status is Verdict.FAIL
    ]
    if failing and not a.override:
        raise Rejected(
            f"gate {failing[0].gate} is {failing[0].status}: {failing[0].reason}; approving over it needs admin override"
        )
    if a.override and a.role < Role.ADMIN:
        raise Rejected(f"{a.actor.user} is {a.role.name.lower()}; an override needs admin")
    record = ApprovalRecord(
        user=a.actor.user,
        origin=a.actor.origin,
        role=a.role.name.lower(),
        reason=a.reason,
        at=b.now,
        override=bool(failing) and a.override,
        verdicts=tuple(v.to_dict() for v in r.verdicts),
    )
    b.r = replace(r, approvals=r.approvals + (record,))
    b.records.append(
        Record(
            "rollout.approval",
            a.actor,
            {
                "phase": phase.name,
                "role": record.role,
                "reason": a.reason,
                "override": record.override,
                "verdicts": list(record.verdicts),
                "approvers": sorted(distinct_approvers(b.r)),
            },
        )
    )
    if approvals_satisfied(phase, b.r):
        _finish_phase(
            b, a.actor, f"phase {phase.name} approved by {', '.join(sorted(distinct_approvers(b.r)))}"
        )
    else:
        b.r = replace(b.r, reason=f"awaiting approval: {approvals_missing(phase, b.r)}")


def _on_tick(b: _Builder, t: Tick) -> None:
    r = b.r
    if r.state not in ACTIVE_STATES:
        raise Rejected(f"rollout {r.id} is {r.state}")
    phase = current_phase(b.plan, r)
    if r.awaiting_backup:
        raise Rejected(
            f"phase {phase.name} has not started: it waits for its backup of {phase.backup_before}"
        )
    items = [i for g in phase.gates if g.kind == "checklist" for i in g.items]
    if t.item not in items:
        listed = "; ".join(items) if items else "none"
        raise Rejected(f"phase {phase.name} has no checklist item {t.item!r} (items: {listed})")
    if any(c.item == t.item for c in r.checklist):
        raise Rejected(f"{t.item!r} is already ticked")
    b.r = replace(r, checklist=r.checklist + (ChecklistTick(t.item, t.actor.user, b.now),), updated_at=b.now)
    b.records.append(Record("checklist.tick", t.actor, {"phase": phase.name, "item": t.item}))
