"""The kill switch under store faults, as a user meets them: a running engine promoting a canary,
another process holding SQLite's write lock, a full filesystem. Afterwards the flag files, the store
and the audit log must agree that the switch is engaged, and nothing may have moved forward."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from opsconsole.engine.model import RolloutState

from .conftest import (
    REPO,
    cli,
    engine_as,
    fill,
    flag_file,
    spawn,
    sqlite_write_lock,
    wait_for,
    write_workspace,
)

CANARY = """
name: canary
phases:
  - name: canary
    environment: production
    strategy: {kind: canary, flag: new_checkout, steps: [0, 5, 10, 25, 50, 75, 100], step_wait: 1s}
"""


def percent(ws: Path) -> int:
    return int(flag_file(ws)["flags"].get("new_checkout", {}).get("rollout_percentage", 0))


def safe(ws: Path) -> bool:
    try:
        doc = flag_file(ws)
    except (OSError, ValueError):
        return False
    nc = doc["flags"].get("new_checkout", {})
    return doc.get("emergency_shutdown") is True and not nc.get("enabled") and percent(ws) == 0


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def test_a_kill_pulled_while_the_store_is_locked_is_never_undone(tmp_path, service):
    """Finding: the running engine rewrote the flag files from the store once the lock was gone and
    went on promoting the canary; the audit log showed the kill after later promotions."""
    ws = write_workspace(tmp_path, service.port, plan=CANARY)
    eng = engine_as(ws, "bob")
    rid = eng.start_rollout("canary", "fault test").id
    engine = spawn("engine", "--workspace", str(ws))
    try:
        wait_for(lambda: (ws / "flags" / "production.json").exists() and percent(ws) >= 5, 30, "canary at 5%")
        with sqlite_write_lock(ws / "state.db", 6.0):
            pressed = time.time()
            t0 = time.monotonic()
            kill = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "opsconsole",
                    "kill",
                    "--reason",
                    "locked store drill",
                    "--workspace",
                    str(ws),
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_for(lambda: safe(ws), 5, "safe flag files")
            files_safe_after = time.monotonic() - t0
            out, err = kill.communicate(timeout=10)
            returned_after = time.monotonic() - t0
        # The files did not wait for the lock, nor did the command wait for all of it.
        assert files_safe_after < 1.5, files_safe_after
        assert kill.returncode == 5, out + err
        assert returned_after < 5.0, returned_after
        result = json.loads(out)
        assert result["recorded"] is False and result["journaled"] is True
        assert "kill-journal.jsonl" in err
        # The lock is gone: the engine records the kill; nothing moves forward, the files stay safe.
        wait_for(lambda: eng.kill_state().source == "store", 10, "kill recorded by the running engine")
        for _ in range(30):  # three seconds of engine ticks
            assert safe(ws), flag_file(ws)
            time.sleep(0.1)
        assert engine.poll() is None, "the engine must keep running"
    finally:
        log = stop(engine)
    r = eng.rollout(rid)
    assert r.state is RolloutState.ABORTED, (r.state, log)
    events = eng.audit_events()
    (kill_event,) = [e for e in events if e.action == "kill_switch.engage"]
    assert kill_event.data["recorded_late"] is True
    # The event carries the time the command was given, not the time the store took it.
    assert pressed - 1 <= kill_event.at <= pressed + 1.5
    later = [e for e in events if e.seq > kill_event.seq and e.action == "rollout.transition"]
    assert all(e.data["to"] in ("aborted", "rolling_back", "rolled_back") for e in later), later
    # No promotion is stamped after the kill.
    promotions = [
        e
        for e in events
        if e.action == "rollout.transition" and e.data["to"] == "progressing" and e.at > kill_event.at
    ]
    assert promotions == []
    history = eng.flag_history("production", "new_checkout")
    assert history[-1]["new"] == 0


def test_the_kill_switch_writes_safe_files_on_a_full_disk(tmp_path, small_tmpfs, service):
    """Finding: on a full filesystem `kill` ended in an OSError traceback, exit 1, no journal line."""
    ws = write_workspace(small_tmpfs, service.port, plan=CANARY)
    eng = engine_as(ws, "bob")  # opening the workspace keeps a reserve for exactly this
    eng.start_rollout("canary", "full disk drill")
    eng.export_flags()
    eng.close()
    assert (ws / ".kill-reserve").exists()
    fill(small_tmpfs)
    p = cli("kill", "--reason", "disk full drill", "--workspace", str(ws))
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode in (0, 5), p.stdout + p.stderr
    assert safe(ws), flag_file(ws)
    journal = (ws / "kill-journal.jsonl").read_text()
    assert "disk full drill" in journal
    # Room again: the engagement is (or already was) recorded exactly once.
    for f in small_tmpfs.glob("filler-*"):
        f.unlink()
    later = engine_as(ws, "bob")
    assert later.kill_state().source == "store"
    kills = [e for e in later.audit_events() if e.action == "kill_switch.engage"]
    assert len(kills) == 1 and kills[0].data["reason"] == "disk full drill"


def test_a_flag_change_the_disk_cannot_hold_is_said_and_written_once_there_is_room(
    tmp_path, small_tmpfs, service
):
    """Finding: `flags set` with room for the store but not for the files committed to the store,
    left the files behind with a traceback, and nothing reconciled them."""
    ws = write_workspace(tmp_path, service.port, plan=CANARY)
    main = ws / "opsconsole.yaml"
    target = small_tmpfs / "production.json"
    main.write_text(main.read_text().replace("${WORKSPACE}/flags/production.json", str(target)))
    engine_as(ws, "bob").export_flags()
    before = json.loads(target.read_text())["flags"]["new_checkout"]["rollout_percentage"]
    assert before == 0
    fill(small_tmpfs)
    p = cli(
        "flags",
        "set",
        "new_checkout",
        "30",
        "--env",
        "production",
        "--reason",
        "full",
        "--workspace",
        str(ws),
    )
    assert p.returncode == 5, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "could not be written" in p.stderr, p.stderr
    assert engine_as(ws, "bob").flag_states("production")["new_checkout"].value == 30
    assert json.loads(target.read_text())["flags"]["new_checkout"]["rollout_percentage"] == 0
    engine = spawn("engine", "--workspace", str(ws))
    try:
        time.sleep(2.5)  # the runner tries every tick and says why it cannot
        assert engine.poll() is None
        for f in small_tmpfs.glob("filler-*"):
            f.unlink()
        wait_for(
            lambda: json.loads(target.read_text())["flags"]["new_checkout"]["rollout_percentage"] == 30,
            10,
            "flag file rewritten",
        )
    finally:
        log = stop(engine)
    assert "flag files could not be written" in log and "match the store" in log, log


def test_a_kill_command_killed_at_any_moment_still_ends_safe(tmp_path, service):
    """SIGKILL the `kill` command at random moments (before, during and after its journal line and
    files): whatever it got to, the running engine ends with the switch engaged and the files safe,
    or, if it was killed before the journal line, with nothing engaged and nothing half-written."""
    import random
    import signal

    ws = write_workspace(tmp_path, service.port, plan=CANARY)
    eng = engine_as(ws, "bob")
    engine = spawn("engine", "--workspace", str(ws))
    delays = [0.1, 0.3, 0.6, 2.0]  # before, around and after the journal line (interpreter start ~0.3 s)
    random.Random(20261129).shuffle(delays)
    outcomes = []
    try:
        for attempt, delay in enumerate(delays):
            rid = eng.start_rollout("canary", f"sigkill {attempt}").id
            wait_for(lambda r=rid: eng.rollout(r).step_index >= 1, 30, "canary stepping")
            kill = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "opsconsole",
                    "kill",
                    "--reason",
                    f"sigkill {attempt}",
                    "--workspace",
                    str(ws),
                ],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(delay)
            kill.send_signal(signal.SIGKILL)
            kill.wait(10)
            journal = ws / "kill-journal.jsonl"
            journaled = journal.exists() and f"sigkill {attempt}" in journal.read_text()
            outcomes.append(journaled)
            if journaled:
                # The intent is durable: the engine records it and everything stays safe.
                wait_for(lambda: eng.kill_state().source == "store", 10, "kill recorded")
                wait_for(lambda: safe(ws), 5, "safe files")
                wait_for(lambda r=rid: eng.rollout(r).state is RolloutState.ABORTED, 10, "rollout aborted")
                time.sleep(1.5)
                assert safe(ws), flag_file(ws)
                engine_as(ws, "alice").all_clear(f"drill {attempt} over")
            else:
                # Killed before the intent was written: nothing engaged; the files are whole JSON.
                assert not eng.kill_state().engaged
                flag_file(ws)
                eng.command(rid, "abort", "next attempt")
            assert engine.poll() is None
    finally:
        stop(engine)
    assert eng.verify_audit().ok
    assert any(outcomes), "no attempt got as far as the journal line: the test proved nothing"
