"""`opsconsole alarms list|silence|unsilence` and `gates check` against the session's real Alertmanager,
run in-process (the whole CLI path: parser, handler, error policy, the output filter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsconsole.cli.dispatch import main
from opsconsole.engine.identity import os_user
from tests.alertmanager.conftest import TOKEN, Alertmanager, alert, engine_for, free_port, write_workspace


def run(ws: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([*args, "--workspace", str(ws)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ws(alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str) -> Path:
    return write_workspace(tmp_path, alertmanager.url, test_id)


def test_silence_and_unsilence_from_the_cli_unblock_and_block_the_gate(
    alertmanager: Alertmanager, test_id: str, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rollout = engine_for(ws, "bob").start_rollout("guarded", "test")
    alertmanager.post(test_id, "OpsPaymentsDown", severity="high")
    code, out, _ = run(ws, capsys, "gates", "check", rollout.id)
    assert code == 1 and "OpsPaymentsDown" in out

    code, out, err = run(
        ws,
        capsys,
        "alarms",
        "silence",
        "OpsPaymentsDown",
        "--duration",
        "15m",
        "--reason",
        "vendor",
        "--json",
    )
    assert code == 0, err
    silence_id = json.loads(out)["silence"]
    code, out, _ = run(ws, capsys, "gates", "check", rollout.id)
    assert code == 0, out

    code, out, _ = run(ws, capsys, "alarms", "list", "--json")
    entry = json.loads(out)["production"]
    (a,) = entry["alerts"]
    assert a["state"] == "silenced" and a["severity"] == "P1" and a["silenced_by"] == [silence_id]
    assert [s["id"] for s in entry["silences"]] == [silence_id]
    assert entry["silences"][0]["comment"] == "vendor" and entry["silences"][0]["created_by"] == os_user()

    code, out, err = run(ws, capsys, "alarms", "unsilence", silence_id, "--reason", "vendor fixed it")
    assert code == 0, err
    assert silence_id in out
    code, out, _ = run(ws, capsys, "gates", "check", rollout.id)
    assert code == 1
    events = engine_for(ws, "bob").audit_events()
    actions = [e.action for e in events]
    assert actions.count("alarm.silence") == 1 and actions.count("alarm.unsilence") == 1
    assert TOKEN not in json.dumps([(e.target, e.data) for e in events], default=str)
    assert not [p for p in ws.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]  # store, logs


def test_list_escapes_remote_text_and_never_shows_the_token(
    alertmanager: Alertmanager, test_id: str, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alertmanager.post_alerts(
        [
            alert(
                test_id,
                "OpsEvil[bold]\x1b[31m",
                {"summary": "[red]boom[/red] \x1b]0;pwned\x07 done"},
                severity="critical",
                owner="[link=http://x]me[/link]",
            )
        ]
    )
    code, out, err = run(ws, capsys, "alarms", "list")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "OpsEvil[bold]" in out and "[red]boom[/red]" in out and "owner=[link=http://x]me[/link]" in out
    assert "firing" in out and "P0" in out
    assert TOKEN not in out + err


def test_viewers_and_read_only_sessions_are_refused(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("alarms", "silence", "OpsX", "--duration", "5m", "--reason", "r")
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    code, _, err = run(ws, capsys, *args, "--read-only")
    assert code == 4 and "read-only" in err
    ws = write_workspace(tmp_path, alertmanager.url, test_id, cli_role="viewer")
    code, _, err = run(ws, capsys, *args)
    assert code == 4 and "needs operator" in err
    code, _, err = run(ws, capsys, "alarms", "unsilence", "abc", "--reason", "r")
    assert code == 4 and "needs operator" in err
    assert alertmanager.silences(test_id) == []


def test_bad_input_is_named(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(ws, capsys, "alarms", "silence", "--duration", "5m", "--reason", "r")
    assert code == 2 and "at least one label matcher" in err
    code, _, err = run(
        ws, capsys, "alarms", "silence", "X", "--match", "nolabel", "--duration", "5m", "--reason", "r"
    )
    assert code == 2 and "--match takes LABEL=VALUE" in err
    code, _, err = run(ws, capsys, "alarms", "silence", "X", "--duration", "soon", "--reason", "r")
    assert code == 2 and "soon" in err
    code, _, err = run(ws, capsys, "alarms", "list", "--env", "nowhere")
    assert code == 2 and "unknown environment 'nowhere'" in err
    code, _, err = run(ws, capsys, "alarms", "list", "--env", "staging")
    assert code == 2 and "staging has no alarm source" in err


def test_an_unreachable_alertmanager_is_unknown_in_list_and_refuses_silences(
    tmp_path: Path, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = write_workspace(tmp_path, f"http://127.0.0.1:{free_port()}", "down")
    code, out, _ = run(ws, capsys, "alarms", "list")
    assert code == 1 and "production: unknown:" in out and "ConnectError" in out
    code, _, err = run(ws, capsys, "alarms", "silence", "X", "--duration", "5m", "--reason", "r")
    assert code == 1 and err.startswith("alarm source: alertmanager http://127.0.0.1:")
    assert TOKEN not in out + err
