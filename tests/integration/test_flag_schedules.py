"""Scheduled flag changes and flag history against the real SQLite store and flag files, with the
engine's clock under the test's control; the CLI through opsconsole.cli.main in this process."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsconsole import cli
from opsconsole.engine import Forbidden, NotFound, Rejected
from opsconsole.engine.core import Engine
from opsconsole.engine.events import EngineEvent
from opsconsole.engine.model import Actor, Config, FlagDef, ScheduleState
from opsconsole.engine.runner import Runner
from opsconsole.engine.schedules import ramp
from opsconsole.engine.store import open_store
from opsconsole.engine.store.schema import LATEST_VERSION, MIGRATIONS, current_version

from .conftest import load_ws, write_workspace

ME = pwd.getpwuid(os.getuid()).pw_name
T0 = datetime(2026, 10, 1, 13, 0, tzinfo=UTC).timestamp()
DAY = 86400.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path, 9)  # nothing here observes metrics: the port is never used


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def as_user(ws: Path, clock: Clock) -> Callable[..., Engine]:
    opened: list[Engine] = []

    def make(user: str, config: Config | None = None, **kw: Any) -> Engine:
        opened.append(Engine(config or load_ws(ws), ws, Actor(user, "test"), clock=clock, **kw))
        return opened[-1]

    yield make
    for e in opened:
        e.close()


def percentage(ws: Path, flag: str = "new_checkout", env: str = "production") -> int:
    return int(json.loads((ws / "flags" / f"{env}.json").read_text())["flags"][flag]["rollout_percentage"])


# ------------------------------------------------------------------------------------ applying


def test_ramp_steps_apply_when_due_as_audited_flag_changes(ws, clock, as_user):
    bob = as_user("bob")
    events: list[EngineEvent] = []
    bob.bus.subscribe(events.append)
    s = bob.schedule_flag("production", "new_checkout", ramp(T0, 0, 100, 7200, 4), "progressive rollout")
    assert s.id == 1 and s.next_index == 1  # the first step was due at once: applied at once
    assert percentage(ws) == 0

    clock.now = T0 + 1799
    assert bob.apply_due_schedules() == []
    clock.now = T0 + 1800
    assert [x.next_index for x in bob.apply_due_schedules()] == [2]
    assert percentage(ws) == 25
    clock.now = T0 + 7300  # the engine was down through two steps: straight to the latest
    (done,) = bob.apply_due_schedules()
    assert done.state is ScheduleState.DONE and done.ended_reason == "all 5 steps applied"
    assert percentage(ws) == 100
    assert bob.flag_schedules() == [] and bob.flag_schedules(active_only=False) == [done]

    history = bob.flag_history("production", "new_checkout")
    assert [(h["old"], h["new"]) for h in history] == [(None, 0), (0, 25), (25, 100)]
    assert {(h["actor"], h["origin"]) for h in history} == {("bob", "schedule #1")}
    assert history[1]["reason"] == "schedule #1 step 2/5 by bob: progressive rollout"
    audit = bob.audit_events(target="flag:production/new_checkout")
    assert [e.action for e in audit] == ["flag.schedule", "flag.set", "flag.set", "flag.set"]
    assert audit[0].actor == "bob" and audit[0].data["reason"] == "progressive rollout"
    last = audit[-1].data
    assert (last["schedule"], last["scheduled_by"], last["step"], last["skipped"]) == (1, "bob", 5, 2)
    assert bob.verify_audit().ok
    kinds = [e.kind for e in events]
    assert kinds.count("schedules") == 4 and "flags" in kinds  # created + three applications


def test_one_change_at_a_set_time(ws, clock, as_user):
    bob = as_user("bob")
    s = bob.schedule_flag("staging", "enable_new_checkout", [(T0 + 3600, "true")], "")  # staging, medium
    assert s.next_index == 0 and s.next_step is not None and s.next_step.value is True
    clock.now = T0 + 3599
    assert bob.apply_due_schedules() == []
    assert bob.flag_history("staging", "enable_new_checkout") == []
    clock.now = T0 + 3600
    assert bob.apply_due_schedules()[0].state is ScheduleState.DONE
    doc = json.loads((ws / "flags" / "staging.json").read_text())
    assert doc["flags"]["enable_new_checkout"]["enabled"] is True


def test_nothing_due_is_one_indexed_query_and_writes_nothing(ws, clock, as_user):
    bob = as_user("bob")
    bob.schedule_flag("production", "new_checkout", [(T0 + 600, 10)], "later")
    before = len(bob.audit_events())
    assert bob.apply_due_schedules() == []
    assert len(bob.audit_events()) == before
    db = sqlite3.connect(ws / "state.db")
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM flag_schedules WHERE state = ? AND next_at <= ?", ("pending", T0)
    ).fetchall()
    db.close()
    assert "flag_schedules_due" in " ".join(str(row[-1]) for row in plan)


def test_the_runner_applies_due_steps_every_tick(ws, clock, as_user):
    bob = as_user("bob")
    bob.schedule_flag("production", "new_checkout", [(T0 + 5, 40)], "raise")
    runner = Runner(bob, interval=1.0)

    async def two_ticks() -> None:
        try:
            await runner.tick()
            clock.now = T0 + 5
            await runner.tick()
        finally:
            await runner.observer.close()

    asyncio.run(two_ticks())
    assert runner.stats.schedule_changes == 1 and runner.stats.schedule_errors == 0
    assert percentage(ws) == 40


def test_two_engines_apply_a_step_once(ws, clock, as_user):
    bob, alice = as_user("bob"), as_user("alice")
    bob.schedule_flag("production", "new_checkout", [(T0 + 60, 30)], "raise")
    clock.now = T0 + 60
    applied = [len(bob.apply_due_schedules()), len(alice.apply_due_schedules())]
    assert applied == [1, 0]
    assert len(bob.flag_history("production", "new_checkout")) == 1


def test_a_schedule_whose_flag_is_gone_from_config_is_stopped(ws, clock, as_user):
    bob = as_user("bob")
    bob.schedule_flag("production", "new_checkout", [(T0 + 60, 30)], "raise")
    config = load_ws(ws)
    trimmed = replace(config, flags={k: v for k, v in config.flags.items() if k != "new_checkout"})
    clock.now = T0 + 60
    (s,) = as_user("bob", trimmed).apply_due_schedules()
    assert s.state is ScheduleState.STOPPED and "no flag 'new_checkout'" in s.ended_reason
    assert bob.flag_history("production", "new_checkout") == []
    assert bob.audit_events()[-1].action == "flag.schedule.stop"


# ------------------------------------------------------------------------------------ cancel, kill switch


def test_cancel_stops_a_schedule_and_keeps_what_was_applied(ws, clock, as_user):
    bob, alice = as_user("bob"), as_user("alice")
    bob.schedule_flag("production", "new_checkout", ramp(T0, 10, 50, 600, 2), "ramp")
    s = alice.cancel_schedule(1, "error budget is thin")
    assert s.state is ScheduleState.CANCELED and s.next_index == 1
    assert s.ended_reason == "canceled by alice: error budget is thin"
    clock.now = T0 + 3600
    assert bob.apply_due_schedules() == []
    assert percentage(ws) == 10
    with pytest.raises(Rejected, match="already canceled"):
        alice.cancel_schedule(1, "again")
    with pytest.raises(NotFound, match="no schedule #99"):
        alice.cancel_schedule(99, "what")
    with pytest.raises(Forbidden):
        as_user("carol").cancel_schedule(1, "viewer")
    cancel = bob.audit_events()[-1]
    assert (cancel.action, cancel.actor, cancel.data["schedule"]) == ("flag.schedule.cancel", "alice", 1)
    # Once canceled the flag is free for a new schedule.
    assert bob.schedule_flag("production", "new_checkout", [(T0 + 7200, 20)], "again").id == 2


def test_kill_switch_stops_every_pending_schedule_for_good(ws, clock, as_user):
    bob, alice = as_user("bob"), as_user("alice")
    bob.schedule_flag("production", "new_checkout", ramp(T0, 0, 100, 3600, 4), "ramp")
    bob.schedule_flag("staging", "enable_new_checkout", [(T0 + 600, True)], "later")
    clock.now = T0 + 60
    bob.kill("drill")
    stopped = bob.flag_schedules(active_only=False)
    assert [s.state for s in stopped] == [ScheduleState.STOPPED] * 2
    assert all(s.ended_reason == "kill switch engaged by bob: drill" for s in stopped)
    kill = bob.audit_events(target="kill_switch")[-1]
    assert kill.data["stopped_schedules"] == [1, 2]
    with pytest.raises(Rejected, match="kill switch is engaged"):
        bob.schedule_flag("production", "new_checkout", [(T0 + 600, 50)], "sneak in")

    alice.all_clear("drill over")
    clock.now = T0 + 7200
    assert bob.apply_due_schedules() == []  # a stopped schedule never resumes by itself
    assert percentage(ws) == 0
    assert [h["new"] for h in bob.flag_history("production", "new_checkout")] == [0]


def test_kill_switch_from_the_environment_stops_pending_schedules(ws, clock, as_user):
    as_user("bob").schedule_flag("production", "new_checkout", [(T0 + 60, 50)], "raise")
    engaged = as_user("bob", environ={"EMERGENCY_SHUTDOWN": "true"})
    engaged.engage_from_environment()
    clock.now = T0 + 60
    assert engaged.apply_due_schedules() == []
    (s,) = engaged.flag_schedules(active_only=False)
    assert s.state is ScheduleState.STOPPED and "kill switch engaged by bob" in s.ended_reason
    assert engaged.flag_history("production", "new_checkout") == []


# ------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("user", "env", "flag", "steps", "reason", "error", "message"),
    [
        ("bob", "production", "new_chekout", [(T0 + 60, 5)], "r", NotFound, "did you mean 'new_checkout'"),
        ("bob", "prod", "new_checkout", [(T0 + 60, 5)], "r", NotFound, "no environment 'prod'"),
        ("bob", "production", "new_checkout", [(T0 + 60, 150)], "r", ValueError, "0..100, got 150"),
        ("bob", "production", "new_checkout", [(T0 - 60, 5)], "r", ValueError, "in the past"),
        ("bob", "production", "new_checkout", [], "r", ValueError, "at least one step"),
        ("bob", "staging", "phase_4_rollout", [(T0 + 60, 5)], " ", Rejected, "high-risk"),
        ("bob", "production", "new_checkout", [(T0 + 60, 5)], "", Rejected, "production is production"),
        ("carol", "production", "new_checkout", [(T0 + 60, 5)], "r", Forbidden, "carol is viewer"),
    ],
)
def test_bad_schedules_are_refused_and_write_nothing(as_user, user, env, flag, steps, reason, error, message):
    engine = as_user(user)
    with pytest.raises(error, match=message):
        engine.schedule_flag(env, flag, steps, reason)
    assert engine.flag_schedules(active_only=False) == []
    assert engine.audit_events() == []


def test_read_only_sessions_cannot_schedule(as_user):
    with pytest.raises(Forbidden, match="read-only"):
        as_user("bob", read_only=True).schedule_flag("staging", "new_checkout", [(T0 + 60, 5)], "r")


def test_one_pending_schedule_per_flag_and_none_against_a_rollout(as_user):
    bob = as_user("bob")
    bob.schedule_flag("staging", "new_checkout", [(T0 + 60, 5)], "first")
    with pytest.raises(Rejected, match="already has pending schedule #1"):
        bob.schedule_flag("staging", "new_checkout", [(T0 + 120, 9)], "second")
    r = bob.start_rollout("fast", "canary drives new_checkout in production")
    with pytest.raises(Rejected, match=f"rollout {r.id} drives new_checkout in production"):
        bob.schedule_flag("production", "new_checkout", [(T0 + 60, 5)], "fight")


# ------------------------------------------------------------------------------------ store upgrade


def test_a_version_1_store_is_upgraded_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute(
        "CREATE TABLE schema_version (version BIGINT NOT NULL PRIMARY KEY, applied_at DOUBLE PRECISION)"
    )
    for statement in MIGRATIONS[0][1]:
        raw.execute(statement)
    raw.execute("INSERT INTO schema_version VALUES (1, 0)")
    raw.execute("INSERT INTO flags VALUES ('production', 'new_checkout', '25', 1.0, 'alice')")
    raw.close()
    store = open_store(f"sqlite:///{path}")
    try:
        with store.transaction() as tx:
            assert tx.get_flag("production", "new_checkout").value == 25
            s = tx.insert_schedule(
                "production", "new_checkout", ramp(T0, 25, 50, 60, 1), Actor("bob"), "r", T0
            )
            assert tx.due_schedules(T0) == [s]
    finally:
        store.close()
    raw = sqlite3.connect(path)
    assert current_version(raw) == LATEST_VERSION
    raw.close()


# ------------------------------------------------------------------------------------ stale flags


def test_stale_flags_by_created_date_first_change_or_unknown(ws, clock, as_user):
    config = load_ws(ws)
    flags = {
        "old_release": FlagDef("old_release", created=T0 - 50 * DAY),
        "fresh_release": FlagDef("fresh_release", created=T0 - 5 * DAY),
        "ops_toggle": FlagDef("ops_toggle", kind="operational"),
        "never_set": FlagDef("never_set"),
        "big_red_button": FlagDef("big_red_button", kind="kill-switch", created=T0 - 900 * DAY),
    }
    engine = as_user("bob", replace(config, flags=flags))
    clock.now = T0 - 10 * DAY
    engine.set_flag("staging", "ops_toggle", True, "incident 41")  # recorded in staging only
    clock.now = T0
    ages = engine.flag_ages("production")
    assert ages["ops_toggle"].stale and ages["ops_toggle"].source == "first change"
    assert ages["never_set"].detail == "age unknown" and not ages["never_set"].stale
    assert not ages["big_red_button"].stale and not ages["fresh_release"].stale
    assert [a.name for a in engine.stale_flags("production")] == ["old_release", "ops_toggle"]
    with pytest.raises(NotFound):
        engine.stale_flags("nowhere")


# ------------------------------------------------------------------------------------ command line


@pytest.fixture
def run(ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    # The command line acts as the account running the tests (never as $LOGNAME): make it an operator.
    config = ws / "opsconsole.yaml"
    config.write_text(config.read_text().replace("root: admin", f"{ME}: operator"))
    for name in ("OPSCONSOLE_CONFIG", "EMERGENCY_SHUTDOWN", "SSH_CONNECTION", "SSH_CLIENT"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str) -> tuple[int, str, str]:
        try:
            code = cli.main([*args, "--workspace", str(ws)])
        except SystemExit as exc:  # argparse refusing an argument
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("new_chekout", "--at", "+1h", "--to", "25"), "did you mean 'new_checkout'"),
        (("new_checkout", "--at", "+1h", "--to", "150"), "0..100"),
        (("new_checkout", "--at", "2000-01-01T00:00Z", "--to", "25"), "in the past"),
        (("new_checkout", "--at", "soon", "--to", "25"), "14:00"),
        (("new_checkout", "--from", "0", "--to", "100", "--over", "2h", "--steps", "0"), "at least 1"),
        (("new_checkout", "--from", "0", "--to", "100"), "a ramp needs --from, --to and --over"),
        (("new_checkout", "--from", "0", "--to", "100", "--over", "2"), "add a unit"),
        (("new_checkout", "--to", "25"), "--at TIME"),
        (("enable_new_checkout", "--from", "0", "--to", "1", "--over", "1h"), "only percentage flags ramp"),
        (("new_checkout", "--at", "+1h", "--to", "25", "--steps", "3"), "--steps is for a ramp"),
        (("new_checkout", "--at", "+1h", "--to", "25", "--steps", "x"), "invalid int"),
    ],
)
def test_cli_schedule_bad_input_exits_2_and_writes_nothing(run, args, message):
    code, _, err = run("flags", "schedule", *args, "--env", "production", "--reason", "r")
    assert code == 2 and message in err, err
    code, out, _ = run("flags", "schedules", "--all", "--json")
    assert code == 0 and json.loads(out) == []


def test_cli_ramp_list_cancel_and_history(run):
    code, out, err = run(
        "flags", "schedule", "new_checkout", "--env", "production", "--from", "0", "--to", "100",
        "--over", "2h", "--reason", "progressive rollout", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["id"], doc["applied"], doc["next"]["value"]) == (1, 1, 25)
    assert [s["value"] for s in doc["steps"]] == [0, 25, 50, 75, 100]
    assert 1790 < doc["next"]["in_seconds"] <= 1800
    assert "no engine runs on this workspace" in err

    code, out, _ = run("flags", "schedules")
    assert code == 0 and "#1" in out and "production/new_checkout" in out and "next: 25%" in out
    assert "(in 29m" in out or "(in 30m" in out
    code, out, _ = run("flags", "schedules", "--env", "staging", "--json")
    assert code == 0 and json.loads(out) == []
    assert run("flags", "schedules", "--env", "stagin")[0] == 2

    assert run("flags", "cancel", "#1", "--reason", "hold")[0] == 0
    code, _, err = run("flags", "cancel", "1", "--reason", "again")
    assert code == 1 and "already canceled" in err
    code, _, err = run("flags", "cancel", "7", "--reason", "what")
    assert code == 2 and "no schedule #7" in err
    assert run("flags", "cancel", "seven", "--reason", "what")[0] == 2
    code, out, _ = run("flags", "schedules", "--all", "--json")
    assert [s["state"] for s in json.loads(out)] == ["canceled"]

    code, out, _ = run("flags", "history", "new_checkout", "--json")
    assert code == 0
    (change,) = json.loads(out)["changes"]
    assert (change["environment"], change["actor"], change["origin"]) == ("production", ME, "schedule #1")
    assert (change["old"], change["new"]) == (None, 0) and change["at"].endswith("Z")
    assert change["reason"] == f"schedule #1 step 1/5 by {ME}: progressive rollout"
    code, out, _ = run("flags", "history", "new_checkout", "--env", "staging")
    assert code == 0 and "no changes recorded in staging" in out


def test_cli_history_text_and_unknown_names(run):
    assert (
        run("flags", "set", "new_checkout", "30", "--env", "production", "--reason", "canary by hand")[0] == 0
    )
    code, out, _ = run("flags", "history", "new_checkout")
    assert code == 0
    assert "production" in out and f"{ME}@local" in out and "(unset) -> 30" in out and "canary by hand" in out
    code, _, err = run("flags", "history", "new_chekout")
    assert code == 2 and "new_chekout" in err and "did you mean 'new_checkout'" in err
    code, _, err = run("flags", "history", "new_checkout", "--env", "prod")
    assert code == 2 and "no environment 'prod'" in err


def test_cli_flags_list_shows_kind_and_stale_marker(run):
    code, out, _ = run("flags", "list", "--env", "production", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["production"]}
    assert (
        rows["emergency_shutdown"]["kind"] == "kill-switch" and rows["emergency_shutdown"]["stale"] is False
    )
    assert rows["new_checkout"]["age"] == "age unknown" and rows["new_checkout"]["age_seconds"] is None
    assert all(isinstance(r["stale"], bool) for r in rows.values())
    code, out, _ = run("flags", "list", "--env", "production")
    line = next(x for x in out.splitlines() if "emergency_shutdown" in x)
    assert "kill-switch" in line and "STALE" not in line
