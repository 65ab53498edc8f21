"""The engine's own process environment never reaches the flag files, nor what the console shows.

Finding: a viewer who ran `PHASE_4_DEPLOYMENT=true AATC_SYSTEM_ENABLED=true opsconsole engine`
while the kill switch was engaged turned both back on in production.env and the flagd file, with no
audit event, while `flags list` still said they were off by the kill switch; EMERGENCY_SHUTDOWN=true
in the engine's environment wrote files with neither an audit event nor a permission check.
Overrides are the consumers' business: an environment may declare the ones its services run with,
for display only.
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

from .conftest import cli, spawn, wait_for

ME = pwd.getpwuid(os.getuid()).pw_name
REPO = Path(__file__).resolve().parents[2]
SHELL_OVERRIDES = {"PHASE_4_DEPLOYMENT": "true", "AATC_SYSTEM_ENABLED": "true"}
KILLED = ("phase_4_deployment", "aatc_system_enabled")


def workspace(tmp_path: Path, my_role: str, overrides: str = "") -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    main = f"""
    interval: 0.2s
    roles:
      default: viewer
      users: {{{ME}: {my_role}}}
    environments:
      production:
        flags:
          kind: file
          path: "${{WORKSPACE}}/flags/production.json"
          flagd: "${{WORKSPACE}}/flags/production.flagd.json"
          dotenv: "${{WORKSPACE}}/flags/production.env"
    @OVERRIDES@
    plans: []
    flags: "{REPO}/config/flags.yaml"
    kill_switch:
      flags_off: [phase_4_deployment, aatc_system_enabled]
      flags_on: [emergency_shutdown]
    """
    text = textwrap.dedent(main).replace("@OVERRIDES@", textwrap.indent(overrides, "    ").strip("\n"))
    (ws / "opsconsole.yaml").write_text(text)
    return ws


def exported(ws: Path) -> dict[str, dict[str, Any]]:
    """Each killed flag's value as every consumer reads it: JSON, flagd, .env."""
    doc = json.loads((ws / "flags" / "production.json").read_text())
    flagd = json.loads((ws / "flags" / "production.flagd.json").read_text())
    dotenv = dict(
        line.split("=", 1)
        for line in (ws / "flags" / "production.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {
        name: {
            "json": doc["flags"][name]["enabled"],
            "flagd": flagd["flags"][name]["defaultVariant"],
            "dotenv": dotenv[name.upper()],
        }
        for name in KILLED
    }


def listed(ws: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    p = cli("flags", "list", "--json", "--env", "production", "--workspace", str(ws), env=env)
    assert p.returncode == 0, p.stderr
    return {row["name"]: row for row in json.loads(p.stdout)["production"]}


def audit(ws: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(ws / "state.db") as db:
        return db.execute("SELECT actor, action FROM audit ORDER BY seq").fetchall()


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        return proc.communicate(timeout=15)[0] or ""
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0] or ""


def test_an_engine_started_with_flag_variables_leaves_the_killed_flags_off(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "operator")
    w = ("--workspace", str(ws))
    for name in KILLED:
        assert cli("flags", "set", "--env", "production", name, "true", "--reason", "on", *w).returncode == 0
    p = cli("kill", "--reason", "incident", *w, timeout=30)
    assert p.returncode == 0, p.stderr
    off = {name: {"json": False, "flagd": "off", "dotenv": "false"} for name in KILLED}
    assert exported(ws) == off

    workspace(tmp_path, "viewer")  # the same workspace, now run by a viewer
    events = len(audit(ws))
    engine = spawn("engine", *w, env=SHELL_OVERRIDES)
    try:
        wait_for(lambda: (ws / "engine-health.json").exists() or engine.poll() is not None, 30, "the engine")
        time.sleep(1.5)  # its start-up export and several ticks
    finally:
        out = stop(engine)
    assert "engine running" in out, out
    assert exported(ws) == off, out
    assert len(audit(ws)) == events  # nothing changed, so nothing to audit
    rows = listed(ws, env=SHELL_OVERRIDES)  # the shell's variables do not reach the display either
    assert (rows["phase_4_deployment"]["value"], rows["phase_4_deployment"]["decided_by"]) == (
        False,
        "kill_switch",
    )
    # Its parent is off, which decides before the kill switch does.
    assert (rows["aatc_system_enabled"]["value"], rows["aatc_system_enabled"]["decided_by"]) == (
        False,
        "parent",
    )


def test_declared_overrides_are_shown_and_never_exported(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "operator", overrides='overrides: {PHASE_4_DEPLOYMENT: "false"}')
    w = ("--workspace", str(ws))
    p = cli("flags", "set", "--env", "production", "phase_4_deployment", "true", "--reason", "go", *w)
    assert p.returncode == 0, p.stderr
    row = listed(ws)["phase_4_deployment"]
    assert (row["value"], row["decided_by"]) == (False, "env")
    assert row["detail"] == "PHASE_4_DEPLOYMENT"
    text = cli("flags", "list", "--env", "production", *w).stdout
    assert "env (PHASE_4_DEPLOYMENT=false, override declared for production)" in text
    # The files say what the store says: each service applies its own override itself.
    assert exported(ws)["phase_4_deployment"] == {"json": True, "flagd": "on", "dotenv": "true"}

    assert cli("kill", "--reason", "incident", *w, timeout=30).returncode == 0
    assert exported(ws)["phase_4_deployment"] == {"json": False, "flagd": "off", "dotenv": "false"}


def test_bad_declared_overrides_name_the_file_and_line(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        "operator",
        overrides='overrides:\n  PHASE_4_DEPLOYMNET: "false"\n  AATC_SYSTEM_ENABLED: maybe\n',
    )
    p = cli("config", "check", "--workspace", str(ws))
    assert p.returncode == 2, p.stdout + p.stderr
    config = str(ws / "opsconsole.yaml")
    lines = (ws / "opsconsole.yaml").read_text().splitlines()
    typo = next(i for i, line in enumerate(lines, 1) if "PHASE_4_DEPLOYMNET" in line)
    maybe = next(i for i, line in enumerate(lines, 1) if "maybe" in line)
    assert f"{config}:{typo}" in p.stderr and "PHASE_4_DEPLOYMENT" in p.stderr  # did you mean
    assert f"{config}:{maybe}" in p.stderr and "not a boolean" in p.stderr


def test_emergency_shutdown_in_the_engine_environment_needs_the_permission(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "viewer")
    w = ("--workspace", str(ws))
    assert cli("status", *w).returncode == 0
    p = subprocess.run(
        [*_opsconsole(), "engine", *w],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO), "EMERGENCY_SHUTDOWN": "true"},
    )
    assert p.returncode == 4, (p.returncode, p.stdout, p.stderr)
    assert f"{ME} is viewer" in p.stderr
    assert not (ws / "flags" / "production.json").exists()
    assert not [a for a in audit(ws) if a[1].startswith("kill_switch")]

    workspace(tmp_path, "operator")
    engine = spawn("engine", *w, env={"EMERGENCY_SHUTDOWN": "true"})
    try:
        wait_for(lambda: "kill_switch.engage" in [a[1] for a in audit(ws)], 30, "the audited kill")
    finally:
        stop(engine)
    assert (ME, "kill_switch.engage") in audit(ws)
    assert json.loads((ws / "flags" / "production.json").read_text())["emergency_shutdown"] is True


def _opsconsole() -> list[str]:
    import sys

    return [sys.executable, "-m", "opsconsole"]
