"""Retention and restorability are pure: properties over generated histories (hypothesis), and the
plain cases that say what each rule keeps and why."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.engine.backups.model import BackupRun, BackupTarget, RunStatus, Trigger
from opsconsole.engine.backups.policy import restorability, retention

DAY = 86400.0
T0 = 1_780_000_000.0


def run(i: int, at: float, status: RunStatus = RunStatus.OK, **kw: object) -> BackupRun:
    return BackupRun(
        id=f"r{i:04d}",
        target="t",
        kind="files",
        trigger=Trigger.MANUAL,
        actor="a",
        started_at=at,
        status=status,
        ended_at=at + 1,
        **kw,  # type: ignore[arg-type]
    )


histories = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=60 * DAY, allow_nan=False),
        st.sampled_from(list(RunStatus)),
        st.booleans(),
    ),
    max_size=40,
).map(
    lambda xs: [
        run(i, T0 + at, status, in_use_by="x" if in_use and status != RunStatus.PRUNED else "")
        for i, (at, status, in_use) in enumerate(xs)
    ]
)
rules = st.one_of(st.none(), st.integers(min_value=1, max_value=10))


@settings(max_examples=300)
@given(histories, rules, rules, rules)
def test_never_deletes_the_newest_verified_or_one_in_use(
    runs: list[BackupRun], last: int | None, daily: int | None, weekly: int | None
) -> None:
    decisions = retention(runs, last, daily, weekly)
    gone = {d.run.id for d in decisions if not d.keep}
    verified = sorted((r for r in runs if r.status == RunStatus.VERIFIED), key=lambda r: (r.started_at, r.id))
    if verified:
        assert verified[-1].id not in gone
    assert not any(r.in_use_by and r.id in gone for r in runs)
    # only stored copies are decided, each once, and every decision says why
    stored = [r for r in runs if r.status in (RunStatus.OK, RunStatus.VERIFIED, RunStatus.VERIFY_FAILED)]
    assert sorted(d.run.id for d in decisions) == sorted(r.id for r in stored)
    assert all(d.why for d in decisions)


@settings(max_examples=200)
@given(histories, rules)
def test_keep_last_keeps_the_newest_good_ones(runs: list[BackupRun], last: int | None) -> None:
    decisions = retention(runs, last, None, None)
    kept = {d.run.id for d in decisions if d.keep}
    good = sorted(
        (r for r in runs if r.status in (RunStatus.OK, RunStatus.VERIFIED)),
        key=lambda r: (r.started_at, r.id),
        reverse=True,
    )
    if last is not None:
        assert {r.id for r in good[:last]} <= kept


def test_rules_say_which_keeps_each() -> None:
    runs = [run(i, T0 + i * DAY / 2) for i in range(10)]  # two a day for five days
    decisions = {d.run.id: d for d in retention(runs, 1, 3, None)}
    assert decisions["r0009"].keep and "keep_last 1" in decisions["r0009"].why
    assert "keep_daily 3" in decisions["r0009"].why
    kept = sorted(k for k, d in decisions.items() if d.keep)
    assert len(kept) == 3 and all("keep_daily" in decisions[k].why for k in kept)
    assert decisions["r0000"].why == "outside every rule"


def test_no_rule_keeps_everything_and_bad_copies_are_not_counted() -> None:
    runs = [run(0, T0), run(1, T0 + 10, RunStatus.VERIFY_FAILED)]
    assert all(d.keep for d in retention(runs, None, None, None))
    decisions = {d.run.id: d for d in retention(runs, 1, None, None)}
    assert decisions["r0000"].keep and not decisions["r0001"].keep
    assert "failed verification" in decisions["r0001"].why


def test_restorability_states() -> None:
    t = BackupTarget(name="t", kind="files", schedule=3600)
    now = T0 + 100
    assert restorability(t, [], now).state == "unverified"
    ok = run(1, T0, RunStatus.OK)
    assert restorability(t, [ok], now).state == "unverified"
    v = run(1, T0, RunStatus.VERIFIED, verified_at=T0 + 5, restore_tested_at=T0 + 5, verified_how="full read")
    s = restorability(t, [v], now)
    assert s.state == "ok" and "full read" in s.why
    assert restorability(t, [v], T0 + 3 * 3600).state == "stale"
    failed = run(2, T0 + 50, RunStatus.FAILED, reason="no space left")
    s = restorability(t, [failed, v], now)
    assert s.state == "failing" and "no space left" in s.why and "r0001" in s.why
