"""The rollout state machine: examples for every rule, and properties over random event sequences."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.engine.model import (
    ACTIVE_STATES,
    Actor,
    ApprovalSpec,
    GateSpec,
    GateVerdict,
    Phase,
    Plan,
    Role,
    RolloutState,
    Strategy,
    Verdict,
)
from opsconsole.engine.rollout import (
    Approve,
    Command,
    Evaluate,
    Rejected,
    RollbackDone,
    SetFlags,
    Tick,
    decide,
    new_rollout,
)

S = RolloutState
BOB = Actor("bob", "local")  # starts rollouts
ALICE = Actor("alice", "ssh 10.0.0.5:5555")
CAROL = Actor("carol", "local")
ROOT = Actor("root", "local")

HEALTH = GateSpec(kind="health", name="health", url="http://127.0.0.1:1/health")
CHECK = GateSpec(kind="checklist", name="checklist", items=("backup taken", "on-call notified"))
ERR = GateSpec(kind="metric", name="error_rate", query="x", max=0.01, failure_limit=2)

PLAN = Plan(
    name="p",
    phases=(
        Phase(
            name="staging",
            environment="staging",
            flags={"enable_new_checkout": True},
            gates=(HEALTH,),
            approval=ApprovalSpec(required=True, role=Role.APPROVER),
        ),
        Phase(
            name="canary",
            environment="production",
            strategy=Strategy(kind="canary", flag="new_checkout", steps=(0, 50, 100), step_wait=10.0),
            guards=(ERR,),
            gates=(HEALTH,),
        ),
    ),
)


def v(gate: str, status: Verdict, failures: int = 0, limit: int = 1, **kw: object) -> GateVerdict:
    return GateVerdict(
        gate=gate,
        kind="x",
        status=status,
        reason=f"{gate} {status}",
        failures=failures,
        failure_limit=limit,
        breached=failures >= limit and status is Verdict.FAIL,
        **kw,  # type: ignore[arg-type]
    )


def started(now: float = 0.0):
    r = new_rollout(PLAN, "r1", BOB, now, "test").rollout
    d = decide(PLAN, r, Evaluate(), now)
    return d


def at_canary(now: float = 100.0):
    """A rollout that passed staging (approved by alice) and sits at the canary's 0% step."""
    r = started().rollout
    r = decide(PLAN, r, Evaluate(gates=(v("health", Verdict.PASS),)), 1.0).rollout
    assert r.state is S.AWAITING_APPROVAL
    d = decide(PLAN, r, Approve(ALICE, Role.APPROVER, "looks good"), now)
    return d


def test_new_rollout_is_pending_then_starts_first_phase_with_its_flags():
    d0 = new_rollout(PLAN, "r1", BOB, 0.0, "go")
    assert d0.rollout.state is S.PENDING
    assert d0.records[0].action == "rollout.start"
    d = decide(PLAN, d0.rollout, Evaluate(), 1.0)
    assert d.rollout.state is S.PROGRESSING
    assert d.actions == (SetFlags("staging", {"enable_new_checkout": True}),)


def test_phase_waits_for_gates_then_approval():
    r = started().rollout
    d = decide(PLAN, r, Evaluate(gates=(v("health", Verdict.UNKNOWN),)), 1.0)
    assert d.rollout.state is S.PROGRESSING and "health" in d.rollout.reason
    d = decide(PLAN, r, Evaluate(gates=(v("health", Verdict.PASS),)), 1.0)
    assert d.rollout.state is S.AWAITING_APPROVAL
    assert any(a.event == "approval_needed" for a in d.actions if not isinstance(a, SetFlags))


def test_starter_cannot_be_only_approver_and_role_is_checked():
    r = decide(PLAN, started().rollout, Evaluate(gates=(v("health", Verdict.PASS),)), 1.0).rollout
    with pytest.raises(Rejected, match="cannot be its only approver"):
        decide(PLAN, r, Approve(BOB, Role.ADMIN, "mine"), 2.0)
    with pytest.raises(Rejected, match="needs approver"):
        decide(PLAN, r, Approve(CAROL, Role.OPERATOR, "ok"), 2.0)
    with pytest.raises(Rejected, match="reason"):
        decide(PLAN, r, Approve(ALICE, Role.APPROVER, "  "), 2.0)


def test_approval_records_who_why_and_evidence_and_enters_next_phase():
    d = at_canary()
    r = d.rollout
    assert r.state is S.PROGRESSING and r.phase_index == 1 and r.step_index == 0
    rec = next(x for x in d.records if x.action == "rollout.approval")
    assert rec.actor == ALICE and rec.data["reason"] == "looks good"
    assert rec.data["verdicts"][0]["gate"] == "health"
    assert SetFlags("production", {"new_checkout": 0}) in d.actions
    assert r.approvals == ()  # approvals belong to the phase they were given for


def test_approval_over_failing_gate_needs_admin_override():
    r = decide(PLAN, started().rollout, Evaluate(gates=(v("health", Verdict.PASS),)), 1.0).rollout
    r = replace(r, verdicts=(v("health", Verdict.FAIL),))
    with pytest.raises(Rejected, match="admin override"):
        decide(PLAN, r, Approve(ALICE, Role.APPROVER, "ship it"), 2.0)
    with pytest.raises(Rejected, match="override needs admin"):
        decide(PLAN, r, Approve(ALICE, Role.APPROVER, "ship it", override=True), 2.0)
    d = decide(PLAN, r, Approve(ROOT, Role.ADMIN, "known flake", override=True), 2.0)
    rec = next(x for x in d.records if x.action == "rollout.approval")
    assert rec.data["override"] is True
    assert d.rollout.phase_index == 1


def test_distinct_approvers():
    plan = replace(
        PLAN,
        phases=(replace(PLAN.phases[0], approval=ApprovalSpec(True, Role.APPROVER, 2)), PLAN.phases[1]),
    )
    r = new_rollout(plan, "r", BOB, 0, "").rollout
    r = decide(plan, r, Evaluate(), 0).rollout
    r = decide(plan, r, Evaluate(gates=(v("health", Verdict.PASS),)), 1).rollout
    r = decide(plan, r, Approve(ALICE, Role.APPROVER, "one"), 2).rollout
    assert r.state is S.AWAITING_APPROVAL and "1 of 2" in r.reason
    with pytest.raises(Rejected, match="already approved"):
        decide(plan, r, Approve(ALICE, Role.APPROVER, "again"), 3)
    r = decide(plan, r, Approve(BOB, Role.APPROVER, "two"), 3).rollout  # the starter may be one of two
    assert r.phase_index == 1


def test_steps_advance_after_wait_and_guards_pass():
    r = at_canary(now=100.0).rollout
    ok = Evaluate(gates=(v("health", Verdict.PASS),), guards=(v("error_rate", Verdict.PASS),))
    assert decide(PLAN, r, ok, 105.0).rollout.step_index == 0
    d = decide(PLAN, r, ok, 110.0)
    assert d.rollout.step_index == 1
    assert SetFlags("production", {"new_checkout": 50}) in d.actions


def test_zero_percent_step_does_not_hold_on_a_guard_without_series_but_exposed_steps_do():
    r = at_canary(now=100.0).rollout
    noseries = Evaluate(
        gates=(v("health", Verdict.PASS),), guards=(v("error_rate", Verdict.UNKNOWN, no_series=True),)
    )
    waiting = decide(PLAN, r, noseries, 105.0).rollout
    assert waiting.step_index == 0
    assert "no canary traffic yet at 0%: allowed" in waiting.reason
    r1 = decide(PLAN, r, noseries, 110.0).rollout
    assert r1.step_index == 1
    assert "step 0% -> 50% (wait over; guard error_rate: no canary traffic yet at 0%: allowed)" in r1.reason
    r2 = decide(PLAN, r1, noseries, 130.0).rollout
    assert r2.step_index == 1 and "no data" in r2.reason


def test_a_failed_guard_source_holds_every_step_zero_percent_included():
    r = at_canary(now=100.0).rollout
    failed = Evaluate(gates=(v("health", Verdict.PASS),), guards=(v("error_rate", Verdict.UNKNOWN),))
    held = decide(PLAN, r, failed, 500.0).rollout
    assert held.step_index == 0
    assert held.reason.startswith("guard error_rate source failed, holding at 0%")
    with pytest.raises(Rejected, match="source failed"):
        decide(PLAN, held, Command("promote", BOB, "push it"), 501.0)


def test_failing_guard_holds_and_breach_rolls_back_restoring_flags():
    r = at_canary(now=100.0).rollout
    r = replace(
        r, flag_restore={"production": {"new_checkout": 0}, "staging": {"enable_new_checkout": False}}
    )
    one = Evaluate(gates=(v("health", Verdict.PASS),), guards=(v("error_rate", Verdict.FAIL, 1, 2),))
    d = decide(PLAN, r, one, 120.0)
    assert d.rollout.state is S.PROGRESSING and d.rollout.step_index == 0
    two = Evaluate(gates=(v("health", Verdict.PASS),), guards=(v("error_rate", Verdict.FAIL, 2, 2),))
    d = decide(PLAN, d.rollout, two, 121.0)
    assert d.rollout.state is S.ROLLING_BACK
    assert SetFlags("staging", {"enable_new_checkout": False}, remember=False) in d.actions
    assert SetFlags("production", {"new_checkout": 0}, remember=False) in d.actions
    assert decide(PLAN, d.rollout, RollbackDone(), 122.0).rollout.state is S.ROLLED_BACK


def test_breach_rolls_back_even_while_paused():
    r = at_canary().rollout
    r = decide(PLAN, r, Command("pause", BOB, "lunch"), 101).rollout
    assert r.state is S.PAUSED
    d = decide(PLAN, r, Evaluate(guards=(v("error_rate", Verdict.FAIL, 2, 2),)), 102)
    assert d.rollout.state is S.ROLLING_BACK


def test_inconclusive_pauses_and_pages():
    r = at_canary().rollout
    g = replace(v("error_rate", Verdict.UNKNOWN), inconclusive=True)
    d = decide(PLAN, r, Evaluate(guards=(g,)), 101)
    assert d.rollout.state is S.PAUSED
    assert any(getattr(a, "event", "") == "inconclusive" for a in d.actions)


def test_pause_resume_abort():
    r = at_canary().rollout
    r = decide(PLAN, r, Command("pause", BOB, "look"), 101).rollout
    with pytest.raises(Rejected):
        decide(PLAN, r, Command("pause", BOB, "again"), 102)
    r = decide(PLAN, r, Command("resume", BOB, "fine"), 103).rollout
    assert r.state is S.PROGRESSING and r.step_started_at == 103
    d = decide(PLAN, r, Command("abort", BOB, "stop"), 104)
    assert d.rollout.state is S.ABORTED
    assert d.actions == (SetFlags("production", {"new_checkout": 0}, remember=False),)
    with pytest.raises(Rejected, match="aborted"):
        decide(PLAN, d.rollout, Command("resume", BOB, "x"), 105)


def test_promote_skips_the_wait_but_not_failing_guards():
    r = at_canary(now=100.0).rollout
    r = replace(r, verdicts=(v("health", Verdict.PASS), v("error_rate", Verdict.PASS)))
    d = decide(PLAN, r, Command("promote", BOB, "confident"), 101.0)
    assert d.rollout.step_index == 1
    bad = replace(r, verdicts=(v("health", Verdict.PASS), v("error_rate", Verdict.FAIL, 1, 2)))
    with pytest.raises(Rejected, match="guard error_rate failing"):
        decide(PLAN, bad, Command("promote", BOB, "confident"), 101.0)


def test_completes_after_last_step():
    r = at_canary(now=100.0).rollout
    ok = Evaluate(gates=(v("health", Verdict.PASS),), guards=(v("error_rate", Verdict.PASS),))
    for t in (110.0, 120.0, 130.0):
        r = decide(PLAN, r, ok, t).rollout
    assert r.state is S.COMPLETED


def test_checklist_ticks_record_who():
    plan = replace(PLAN, phases=(replace(PLAN.phases[0], gates=(HEALTH, CHECK)), PLAN.phases[1]))
    r = decide(plan, new_rollout(plan, "r", BOB, 0, "").rollout, Evaluate(), 0).rollout
    d = decide(plan, r, Tick(CAROL, "backup taken"), 5)
    assert d.rollout.checklist[0].user == "carol" and d.records[0].action == "checklist.tick"
    with pytest.raises(Rejected, match="already ticked"):
        decide(plan, d.rollout, Tick(ALICE, "backup taken"), 6)
    with pytest.raises(Rejected, match="no checklist item"):
        decide(plan, d.rollout, Tick(ALICE, "coffee"), 6)


# ------------------------------------------------------------------------------------- properties

statuses = st.sampled_from(list(Verdict))


@st.composite
def events(draw):
    kind = draw(st.sampled_from(["eval", "eval", "eval", "approve", "cmd", "done"]))
    if kind == "eval":
        hs = draw(statuses)
        es = draw(statuses)
        fails = draw(st.integers(0, 3)) if es is Verdict.FAIL else 0
        return Evaluate(gates=(v("health", hs),), guards=(v("error_rate", es, fails, 2),))
    if kind == "approve":
        who = draw(st.sampled_from([ALICE, BOB, ROOT, CAROL]))
        role = {ALICE: Role.APPROVER, BOB: Role.OPERATOR, ROOT: Role.ADMIN, CAROL: Role.VIEWER}[who]
        return Approve(who, role, "because", override=draw(st.booleans()))
    if kind == "cmd":
        return Command(draw(st.sampled_from(["pause", "resume", "promote", "abort", "rollback"])), BOB, "r")
    return RollbackDone()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(events(), st.floats(0, 20)), max_size=40))
def test_invariants_over_random_event_sequences(seq):
    r = new_rollout(PLAN, "r", BOB, 0.0, "").rollout
    now = 0.0
    for ev, dt in seq:
        now += dt
        before = r
        try:
            d = decide(PLAN, r, ev, now)
        except Rejected:
            continue
        r = d.rollout
        assert 0 <= r.phase_index < len(PLAN.phases)
        assert 0 <= r.step_index < len(PLAN.phases[r.phase_index].steps)
        # terminal states are final
        if before.state in (S.COMPLETED, S.ABORTED, S.ROLLED_BACK):
            assert r.state is before.state
        # a phase never ends over a failing gate unless an admin override says so
        moved_on = r.phase_index > before.phase_index or (
            r.state is S.COMPLETED and before.state is not S.COMPLETED
        )
        if moved_on:
            override = any(x.action == "rollout.approval" and x.data["override"] for x in d.records)
            if isinstance(ev, Evaluate):
                evidence = list(ev.gates)
            else:
                evidence = [x for x in before.verdicts if x.gate == "health"]
            assert override or (evidence and all(g.status is Verdict.PASS for g in evidence))
        # the starter alone never approves a phase that requires approval
        if isinstance(ev, Approve) and r.phase_index > before.phase_index:
            assert {a.user for a in before.approvals} | {ev.actor.user} != {"bob"}


@pytest.mark.parametrize("state", list(S))
def test_allowed_commands_are_exactly_what_decide_accepts(state: RolloutState) -> None:
    """The console offers a rollout's keys from allowed_commands: every command it offers must pass the
    state machine's state check, and every one it withholds must be refused by it."""
    from opsconsole.engine import allowed_commands

    r = replace(at_canary().rollout, state=state, paused_from=S.PROGRESSING)
    allowed = allowed_commands(state)
    assert allowed == allowed_commands(str(state))
    for kind in ("pause", "resume", "abort", "rollback"):
        if kind in allowed:
            decide(PLAN, r, Command(kind, BOB, "why"), 200)
        else:
            with pytest.raises(Rejected):
                decide(PLAN, r, Command(kind, BOB, "why"), 200)
    if "promote" not in allowed:
        with pytest.raises(Rejected):
            decide(PLAN, r, Command("promote", BOB, "why"), 200)
    if "approve" not in allowed:
        with pytest.raises(Rejected):
            decide(PLAN, r, Approve(CAROL, Role.ADMIN, "why"), 200)
    else:
        assert "approval" in str(decide(PLAN, r, Approve(CAROL, Role.ADMIN, "ok"), 200).records)
    if state not in ACTIVE_STATES:
        assert allowed == frozenset()
    assert allowed_commands("no-such-state") == frozenset()


def test_why_counts_the_step_wait_down_live_and_names_its_end_otherwise():
    """The row counts down; the line under the table says when the wait ends, so it does not
    change every second while the countdown does."""
    from types import SimpleNamespace

    from opsconsole.engine.views import why

    r = at_canary(now=100.0).rollout
    assert r.state is S.PROGRESSING and r.step_index == 0
    engine = SimpleNamespace(config=SimpleNamespace(plans={"p": PLAN}, interval=1.0), clock=lambda: 103.0)
    assert why(engine, r) == "next step in 7s"  # type: ignore[arg-type]
    assert why(engine, r, live=False) == "next step: 50% at 00:01:50 UTC"  # type: ignore[arg-type]
