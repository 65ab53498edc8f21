"""Hostile text on its way to a terminal: plan files, checklist items, reasons and configuration keys
carrying escape sequences, markup, bidi overrides and C1 controls. Every command runs in a real
process; its stdout and stderr must hold only printable text, with the hostile part shown visibly,
and its JSON must keep the data exact."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from pathlib import Path

import pytest

from opsconsole.engine.runner import Runner
from tests.tui.conftest import until

from .conftest import cli, engine_as, write_workspace

CORPUS = {
    "markup": "[bold red]x[/]",
    "unclosed": "[link=",
    "osc52": "\x1b]52;c;SGVsbG8=\x07",
    "osc8": "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "title": "\x1b]0;pwned\x07",
    "clear": "\x1b[2J",
    "cursor": "\x1b[10A\x1b[5;5H",
    "bidi": "\u202eevil\u202c \u2066x\u2069 \u200e\u200f\u061c",
    "c1": "\x9b31m",
    "newline": "line1\nkill switch: off",
}
EVIL = " ".join(CORPUS.values())
"""Everything hostile in one string that argv can carry (no NUL)."""
EVIL_NUL = "nul\x00here " + EVIL
BIG = "A" * 50_000 + EVIL + "B" * 50_000

# What a terminal would act on: C0 controls other than newline and tab, DEL, C1, bidi controls.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def assert_printable(text: str, where: str) -> None:
    found = RAW.search(text)
    assert found is None, (
        f"{where}: raw {found.group()!r} at {found.start()}: {text[max(0, found.start() - 60) : found.start() + 60]!r}"
    )


HEAD = ("[bold red]x[/]", "\\x1b]52;c;SGVsbG8=\\x07", "\\x1b]0;pwned\\x07")
ALL = (*HEAD, "\\u202eevil", "\\x9b31m", "line1\\nkill switch: off")


def assert_shown(text: str, where: str, needles: tuple[str, ...] = ALL) -> None:
    """The hostile text is there, visibly: nothing was silently dropped."""
    for shown in needles:
        assert shown in text, f"{where}: {shown!r} not shown in {text[:2000]!r}"


def _yaml(s: str) -> str:
    return json.dumps(s)  # a JSON string is a YAML double-quoted scalar with the same escapes


def evil_plan() -> str:
    return textwrap.dedent(
        f"""
        name: evil
        description: {_yaml(EVIL_NUL)}
        phases:
          - name: only
            environment: staging
            gates:
              - {{kind: checklist, name: {_yaml("list " + CORPUS["title"])}, items: [{_yaml("first " + EVIL_NUL)}, {_yaml("second " + EVIL)}]}}
            approval: {{required: true, role: approver}}
        """
    )


@pytest.fixture
def evil_ws(tmp_path: Path) -> tuple[Path, str]:
    """A workspace whose only plan is hostile, with a rollout in its first phase (verdicts stored)."""
    ws = write_workspace(tmp_path, 1, plan=evil_plan())
    w = ("--workspace", str(ws))
    p = cli("rollout", "start", "evil", "--reason", EVIL, *w)
    assert p.returncode == 0, p.stderr
    rid = p.stdout.split()[0]
    engine = engine_as(ws, "root")
    runner = Runner(engine)

    async def two_ticks() -> None:
        try:
            await runner.tick()  # pending -> progressing
            await runner.tick()  # the checklist gate is evaluated and its verdict stored
        finally:
            await runner.observer.close()

    asyncio.run(two_ticks())
    assert str(engine.rollout(rid).state) == "progressing"
    return ws, rid


def run(*args: str) -> tuple[str, str, int]:
    p = cli(*args)
    return p.stdout, p.stderr, p.returncode


def test_every_text_command_shows_hostile_text_visibly_and_never_raw(evil_ws):
    ws, rid = evil_ws
    w = ("--workspace", str(ws))
    second = "second " + EVIL
    outputs: dict[str, tuple[str, str, int]] = {}
    outputs["tick"] = run("rollout", "tick", rid, second, *w)
    outputs["tick unknown"] = run("rollout", "tick", rid, "nope " + EVIL, *w)
    outputs["promote refused"] = run("rollout", "promote", rid, "--reason", EVIL, *w)
    outputs["status"] = run("status", *w)
    outputs["gates check"] = run("gates", "check", rid, *w)
    outputs["flags set"] = run("flags", "set", "new_checkout", "10", "--env", "staging", "--reason", EVIL, *w)
    outputs["flags history"] = run("flags", "history", "new_checkout", *w)
    outputs["pause"] = run("rollout", "pause", rid, "--reason", BIG, *w)
    outputs["status paused"] = run("status", *w)
    for fmt in ("text", "md"):
        outputs[f"report {fmt}"] = run("report", rid, "--format", fmt, *w)
    outputs["audit"] = run("audit", "--limit", "0", *w)

    assert outputs["tick"][2] == 0 and outputs["tick unknown"][2] in (1, 2)
    assert outputs["promote refused"][2] in (1, 4), outputs["promote refused"]
    for name, (out, err, _code) in outputs.items():
        assert_printable(out, f"{name} stdout")
        assert_printable(err, f"{name} stderr")
    for name in ("tick", "tick unknown", "flags history", "report text", "report md"):
        out, err, _ = outputs[name]
        assert_shown(out + err, name)
    for name in ("status", "gates check"):  # gate reasons quote at most 200 characters of remote text
        assert_shown(outputs[name][0], name, HEAD)
    # A newline in data cannot forge a line of its own in a listing.
    for name in ("status", "status paused", "gates check", "flags history", "report text"):
        out = outputs[name][0]
        ours = 1 if name.startswith("status") else 0  # status's own first line says it
        assert sum(line.startswith("kill switch: off") for line in out.splitlines()) == ours, name
    assert "\\x00here" in outputs["gates check"][0]  # the NUL from the plan file, shown
    # The 100 kB reason is shown whole, as text.
    assert "A" * 50_000 in outputs["status paused"][0] and "B" * 50_000 in outputs["status paused"][0]

    # JSON keeps the data exact.
    doc = json.loads(run("report", rid, "--format", "json", *w)[0])
    assert doc["rollout"]["reason"] == BIG
    assert any(t.get("item") == second for t in doc["timeline"])
    status = json.loads(run("status", "--json", *w)[0])
    assert status["rollouts"][0]["why"] == BIG
    verdicts = json.loads(run("gates", "check", rid, "--json", *w)[0])
    assert "first nul\\x00here [bold red]x[/] [link= \\x1b]52;c;SGVsbG8=\\x07" in verdicts[0]["reason"]
    history = json.loads(run("flags", "history", "new_checkout", "--json", *w)[0])
    assert history["changes"][0]["reason"] == EVIL

    # The kill switch's reason, on the status line everyone reads first.
    assert run("kill", "--reason", EVIL, *w)[2] == 0
    out, err, _ = run("status", *w)
    assert_printable(out + err, "status killed")
    assert out.splitlines()[0].startswith("kill switch: ENGAGED by ")
    assert_shown(out.splitlines()[0], "status killed", ALL)


def test_configuration_errors_show_hostile_keys_visibly(tmp_path):
    key = "\x1b]0;pwned\x07\x1b[2J\u202e[bold]k\x9b"
    ws = write_workspace(tmp_path, 1, extra=f"{_yaml(key)}: 1\n")
    out, err, code = run("config", "check", "--workspace", str(ws))
    assert code == 2, out + err
    assert_printable(out + err, "config check")
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\u202e[bold]k\\x9b" in err, err


# ------------------------------------------------------------------------------------------ console


def _notes(app: object) -> list[str]:
    return [n.message + " " + n.title for n in app._notifications]  # type: ignore[attr-defined]


def test_console_toasts_show_checklist_items_and_refusals_visibly(evil_ws):
    from opsconsole.tui.app import OpsConsoleApp
    from opsconsole.tui.screens.checklist import ChecklistScreen

    ws, rid = evil_ws
    engine = engine_as(ws, "root")

    async def scenario() -> list[str]:
        app = OpsConsoleApp(engine, run_engine=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts, seconds=10.0)
            await pilot.press("c")
            assert isinstance(app.screen, ChecklistScreen)
            await pilot.press("enter")  # ticks the first item: the one with the NUL
            await until(pilot, lambda: any("ticked" in n for n in _notes(app)), seconds=10.0)
            app.run_engine(engine.command, rid, "promote", EVIL)  # refused: the checklist is not done
            await until(pilot, lambda: any("refused" in n for n in _notes(app)), seconds=10.0)
            app.notify(BIG, title=EVIL, markup=True)
            await until(pilot, lambda: len(_notes(app)) >= 3, seconds=10.0)
            return _notes(app)

    notes = asyncio.run(scenario())
    ticked = next(n for n in notes if "ticked" in n)
    assert "nul\\x00here [bold red]x[/] [link= \\x1b]52;c;SGVsbG8=\\x07" in ticked
    assert "line1\\nkill switch: off" in ticked and "\\u202eevil" in ticked
    refused = next(n for n in notes if "refused" in n)
    assert "\\x1b]0;pwned\\x07" in refused  # the gate's name, quoted in the refusal
    big = notes[-1]
    assert "more characters)" in big and len(big) < 2000
    for note in notes:
        assert_printable(note, "toast")


def test_console_in_a_real_terminal_never_sends_hostile_bytes(evil_ws):
    """The console under a pseudo-terminal, as an operator's terminal receives it: the rollout's
    checklist reason in the pane, the checklist dialog, then the tick's toast quoting the item. The raw
    bytes carry no hostile sequence, and the hostile text is there as visible characters."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios
    import threading
    import time

    from tests.integration.conftest import REPO

    ws, rid = evil_ws
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO), "TERM": "xterm-256color", "USER": "root"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "--workspace", str(ws)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    received = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def wait_bytes(needle: bytes, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while needle not in received:
            assert time.monotonic() < deadline, f"{needle!r} not received: {bytes(received[-3000:])!r}"
            time.sleep(0.05)

    try:
        wait_bytes(rid.encode())
        wait_bytes(b"missing: first")  # the pane's "why": the checklist items, hostile text and all
        os.write(master, b"c")
        wait_bytes(b"Checklist of")
        os.write(master, b"\r")  # tick the first item; its toast quotes it
        wait_bytes(b"ticked")
        time.sleep(0.5)
        os.write(master, b"q")
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
        reader.join(timeout=5)
    raw = bytes(received)
    for hostile in (b"\x1b]52;c;SGVsbG8", b"\x1b]0;pwned", b"\x1b]8;;http://evil", b"\x1b[10A\x1b[5;5H"):
        assert hostile not in raw, hostile
    for bidi in "\u202e\u202c\u2066\u2069\u200e\u200f\u061c\x9b":
        assert bidi.encode() not in raw, repr(bidi)
    assert b"\\x1b]52;c;SGVsbG8=" in raw  # shown, as text
