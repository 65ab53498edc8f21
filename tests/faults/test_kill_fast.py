"""`opsconsole kill` in a fresh process: the journal line and the flag files are written from the
cached kill plan with the standard library alone (engine/killfast.py, cli/fastkill.py), before
argparse and the engine's model are imported; only then is the store asked. These tests fail if the
fast path stops being taken, or writes anything but what the whole path writes."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from opsconsole.cli.fastkill import parse
from opsconsole.engine import killfast, killplan, killswitch
from opsconsole.engine.authz import ACTIONS
from opsconsole.engine.model import Actor, Role
from opsconsole.engine.units import iso_utc

from .conftest import REPO, cli, engine_as, flag_file, load_ws, sqlite_write_lock

ME = pwd.getpwuid(os.getuid()).pw_name

FLAGS = """
flags:
  kill_me: {type: boolean, default: true}
  emergency_shutdown: {type: boolean, default: false}
  experiment: {type: variant, default: true, variants: {control: 50, short: 25, long: 25}}
  safe_variant: {type: variant, default: false, variants: {a: 60, b: 40}}
  child_pct: {type: percentage, default: 40, depends_on: kill_me}
  grandchild: {type: boolean, default: true, depends_on: child_pct}
  prod_only_child: {type: boolean, default: true, depends_on: kill_me, environments: [production]}
  targeted:
    type: boolean
    default: false
    depends_on: experiment
    targeting: {users: [ann], regions: [eu]}
  # A plan's canary in life; here the plan carries its definition as a child of a flag it turns on.
  canary: {type: percentage, default: 10, depends_on: emergency_shutdown}
  Mixed_Case: {type: boolean, default: true, depends_on: kill_me}
  untouched: {type: boolean, default: true}
"""


def workspace(tmp_path: Path, role: str = "operator") -> Path:
    """Two environments, production with all three file formats, and flags whose kill states need
    every branch of the patches: a variant flag off, a percentage child, a grandchild, a flag
    scoped to one environment, targeting lists, a canary and a name the .env upper-cases."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "flags.yaml").write_text(FLAGS)
    main = f"""
    interval: 1s
    roles:
      default: viewer
      users: {{{ME}: {role}, bob: operator}}
    environments:
      production:
        flags:
          kind: file
          path: "${{WORKSPACE}}/flags/production.json"
          flagd: "${{WORKSPACE}}/flags/production.flagd.json"
          dotenv: "${{WORKSPACE}}/flags/production.env"
      staging:
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}
    plans: []
    flags: "{tmp_path / "flags.yaml"}"
    kill_switch:
      flags_off: [kill_me, safe_variant]
      flags_on: [emergency_shutdown]
    """
    (ws / "opsconsole.yaml").write_text(textwrap.dedent(main))
    engine = engine_as(ws, "bob")  # leaves kill-plan.json, as any engine does
    engine.export_flags()
    engine.close()
    (ws / killswitch.CANARY_CACHE).write_text(json.dumps({"canaries": {"production": ["canary"]}}))
    return ws


def flag_files(ws: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((ws / "flags").iterdir()) if not p.name.startswith(".")}


def journal_lines(ws: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (ws / killswitch.JOURNAL).read_text().splitlines()]
    for line in lines:
        line.pop("id")
    return lines


@pytest.mark.parametrize("before", ["exported", "garbage", "absent", "foreign"])
def test_the_fast_path_writes_the_bytes_the_whole_path_writes(tmp_path: Path, before: str) -> None:
    ws = workspace(tmp_path)
    flags_dir = ws / "flags"
    if before == "garbage":
        for p in flags_dir.iterdir():
            p.write_text('{"flags": {"kill_me": {"enabled": "yes"}}')
    elif before == "absent":
        shutil.rmtree(flags_dir)
        flags_dir.mkdir()
    elif before == "foreign":  # files others wrote, with entries flagd rejects and stray lines
        (flags_dir / "production.json").write_text(
            json.dumps({"flags": {"other": {"enabled": True, "detail": "x"}, "kill_me": {"enabled": True}}})
        )
        (flags_dir / "production.flagd.json").write_text(
            json.dumps({"flags": {"bad": {"state": "ON"}, "": {}}, "$evaluators": [1]})
        )
        (flags_dir / "production.env").write_text("export KEEP = 1\nnot an assignment\nMIXED_CASE=true\n")
    saved = flag_files(ws)
    at = time.time()
    config = load_ws(ws)
    cached = killplan.load(ws / "opsconsole.yaml", ws)
    plan = killfast.load_plan(ws / "opsconsole.yaml", ws)
    assert cached is not None and plan is not None

    def restore() -> None:
        shutil.rmtree(flags_dir)
        flags_dir.mkdir()
        for name, data in saved.items():
            (flags_dir / name).write_bytes(data)

    fast = killfast.make_safe(plan, ws, ME, "local", "fast", at)
    line = (ws / killswitch.JOURNAL).read_bytes().rstrip(b"\n")
    assert not fast["error"] and fast["journal_hash"] == hashlib.sha256(line).hexdigest()
    written = flag_files(ws)
    restore()
    killswitch.make_safe(cached[0], ws, Actor(ME, "local"), "fast", at, cached[1])
    assert flag_files(ws) == written
    restore()
    killswitch.make_safe(config, ws, Actor(ME, "local"), "fast", at)
    assert flag_files(ws) == written
    assert sorted(fast["files"]) == sorted(str(flags_dir / n) for n in written)
    first, second, third = journal_lines(ws)
    assert first == second == third
    assert first["zero"] == {"production": ["canary"]}


def test_the_fast_path_writes_times_as_the_engine_does() -> None:
    rng = random.Random(8)
    edges = [
        0.0,
        1.0,
        1700000000.0004995,
        1700000000.0005,
        1700000000.9999995,
        1700000000.99999949,
        4102444799.9999,
    ]
    for ts in edges + [rng.uniform(0, 4102444800) for _ in range(20000)]:
        assert killfast.iso_utc(ts) == iso_utc(ts), ts


def test_the_fast_path_knows_the_roles_as_the_engine_does() -> None:
    assert {r.name: int(r) for r in Role} == killfast.ROLE_RANKS
    assert ACTIONS["kill_switch.engage"] == killfast.ENGAGE_RANK


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["kill", "--reason", "r"], {"--reason": "r"}),
        (
            ["--workspace", "w", "kill", "--reason=r", "--config", "c"],
            {"--workspace": "w", "--reason": "r", "--config": "c"},
        ),
        (["--workspace=a", "kill", "--workspace", "b", "--reason", ""], {"--workspace": "b", "--reason": ""}),
        (["kill"], None),
        (["kill", "--reas", "r"], None),  # argparse's abbreviation: left to argparse
        (["kill", "--reason", "-r"], None),
        (["kill", "--reason", "r", "--read-only"], None),
        (["--json", "kill", "--reason", "r"], None),
        (["--reason", "r", "kill"], None),
        (["kill", "--reason", "r", "extra"], None),
        (["kill", "-h"], None),
        (["all-clear", "--reason", "r"], None),
    ],
)
def test_only_plain_kill_command_lines_take_the_fast_path(argv: list[str], expected: Any) -> None:
    assert parse(argv) == expected


HOOKED = """
import json, runpy, sys
seen, flags_dir, out = [], sys.argv[1], sys.argv[2]
def hook(event, args):
    if event == "os.rename" and str(args[1]).startswith(flags_dir):
        seen.append([str(args[1]), "opsconsole.engine.model" in sys.modules, "argparse" in sys.modules])
sys.addaudithook(hook)
sys.argv = ["opsconsole", *sys.argv[3:]]
try:
    runpy.run_module("opsconsole", run_name="__main__")
except SystemExit as exc:
    code = exc.code
with open(out, "w") as fh:
    json.dump({"renames": seen, "exit": code}, fh)
"""


def hooked_kill(ws: Path, out: Path, *args: str) -> dict[str, Any]:
    """`python -m opsconsole kill` with an audit hook noting, at each rename into the flag
    directory (a flag file made durable), whether the model and argparse were imported yet."""
    p = subprocess.run(
        [sys.executable, "-c", HOOKED, str(ws / "flags"), str(out), "kill", "--workspace", str(ws), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO)},
    )
    assert out.exists(), p.stderr
    result: dict[str, Any] = json.loads(out.read_text())
    result["stderr"] = p.stderr
    return result


def test_a_fresh_kill_makes_the_files_safe_before_importing_the_engine_with_the_store_locked(
    tmp_path: Path,
) -> None:
    ws = workspace(tmp_path)
    with sqlite_write_lock(ws / "state.db", 8):
        res = hooked_kill(ws, tmp_path / "hook.json", "--reason", "locked")
    assert res["exit"] == 5, res["stderr"]  # the store did not answer: the journal keeps the event
    flags = sorted(name for name, _, _ in res["renames"])
    assert flags == sorted(str(ws / "flags" / n) for n in flag_files(ws))
    assert all(not model and not argparse for _, model, argparse in res["renames"]), res["renames"]
    assert flag_file(ws)["emergency_shutdown"] is True
    assert flag_file(ws)["flags"]["kill_me"]["enabled"] is False
    assert flag_file(ws, "staging")["flags"]["child_pct"]["decided_by"] == "parent"
    assert journal_lines(ws)[0]["reason"] == "locked"
    # Once the store is free the next command records it (the journal line, replayed).
    done = cli("kill", "--reason", "again", "--workspace", str(ws))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["recorded"] is True


def test_a_stale_kill_plan_means_the_whole_path_and_still_safe_files(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    time.sleep(0.01)
    (tmp_path / "flags.yaml").write_text(FLAGS + "\n")  # a source changed: the plan vouches for nothing
    res = hooked_kill(ws, tmp_path / "hook.json", "--reason", "stale")
    assert res["exit"] == 0, res["stderr"]
    assert res["renames"] and all(model for _, model, _ in res["renames"])
    assert flag_file(ws)["flags"]["kill_me"]["enabled"] is False


def test_a_user_the_plan_does_not_allow_is_refused_by_the_whole_path(tmp_path: Path) -> None:
    ws = workspace(tmp_path, role="viewer")
    before = flag_files(ws)
    res = cli("kill", "--reason", "nope", "--workspace", str(ws))
    assert res.returncode == 4 and "not permitted" in res.stderr
    assert flag_files(ws) == before and not (ws / killswitch.JOURNAL).exists()
