"""The `notifications:` section: the three formats load; bad input is named with file, line and key;
`config check` says when the Telegram token's variable is unset, without ever printing a token."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsconsole.engine.config import ConfigError, load_config
from opsconsole.engine.model import Notification

from .conftest import CHAT, TOKEN, TOKEN_ENV

REPO = Path(__file__).resolve().parents[2]

MAIN = """\
store: sqlite:///${WORKSPACE}/state.db
environments:
  production:
    flags: {kind: file, path: "${WORKSPACE}/flags/production.json"}
flags:
  emergency_shutdown: {default: false, risk: high}
kill_switch:
  flags_on: [emergency_shutdown]
notifications:
"""


def write(tmp_path: Path, items: str) -> Path:
    path = tmp_path / "opsconsole.yaml"
    path.write_text(MAIN + textwrap.indent(textwrap.dedent(items), "  "))
    return path


def load(tmp_path: Path, items: str) -> tuple[Notification, ...]:
    return load_config(write(tmp_path, items), {"WORKSPACE": str(tmp_path)}).notifications


def problems(tmp_path: Path, items: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, items)
    return [str(i) for i in info.value.issues]


def test_the_three_formats_load(tmp_path: Path) -> None:
    got = load(
        tmp_path,
        f"""\
        - {{kind: webhook, url: "https://hooks.example.com/ops", events: [kill_switch, rollback]}}
        - {{kind: slack, url: "https://hooks.slack.com/services/T0/B0/XyZ", events: [approval_needed], timeout: 3s}}
        - kind: telegram
          chat_id: {CHAT}
          token_env: {TOKEN_ENV}
          events: [kill_switch, rollback, approval_needed, backup_failed, alarm_firing, improvement_rollback]
        - {{kind: telegram, chat_id: "@ops_channel", token_env: T, api_url: "http://127.0.0.1:9/"}}
        """,
    )
    webhook, slack, tg, channel = got
    assert (webhook.kind, webhook.events) == ("webhook", ("kill_switch", "rollback"))
    assert (slack.kind, slack.timeout) == ("slack", 3.0)
    assert (tg.kind, tg.chat_id, tg.token_env, tg.url) == (
        "telegram",
        CHAT,
        TOKEN_ENV,
        "https://api.telegram.org",
    )
    assert "alarm_firing" in tg.events and "improvement_rollback" in tg.events
    assert (channel.chat_id, channel.url) == ("@ops_channel", "http://127.0.0.1:9")


def test_bad_entries_are_named_with_line_and_key(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        - {kind: telegram, events: [kill_switch]}
        - {kind: telegram, chat_id: "chat one", token_env: T}
        - {kind: slack, events: [alarm_fring]}
        - {kind: webhook, url: "ftp://x", chat_id: "1"}
        - {kind: pagerduty, url: "https://x"}
        - {kind: teams, url: "https://x"}
        """,
    )
    text = "\n".join(got)
    assert ":10: notifications[0].chat_id: 'chat_id' is required" in text
    assert "notifications[0].token_env: 'token_env' is required" in text
    assert (
        "notifications[1].chat_id: expected a Telegram chat id (digits, maybe with '-') or '@channel'" in text
    )
    assert "notifications[2].url: 'url' is required" in text
    assert "notifications[2].events[0]: unknown event 'alarm_fring' (did you mean 'alarm_firing'?)" in text
    assert "notifications[3].url: expected an http:// or https:// URL" in text
    assert "notifications[3].chat_id: 'chat_id' does not apply to kind 'webhook'" in text
    assert "notifications[4].kind: kind 'pagerduty' is not available yet" in text
    assert "notifications[5].kind: unknown kind 'teams'" in text


def test_a_token_written_into_the_config_is_refused_without_being_repeated(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        f"""\
        - {{kind: telegram, chat_id: 1, token_env: "{TOKEN}"}}
        - {{kind: telegram, chat_id: 1, token_env: T, api_url: "https://api.telegram.org/bot{TOKEN}"}}
        """,
    )
    text = "\n".join(got)
    assert "notifications[0].token_env: expected the name of an environment variable" in text
    assert "notifications[1].api_url: a bot token in the URL would be shown and logged" in text
    assert TOKEN not in text and TOKEN.split(":")[1] not in text


def _check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "config",
            "check",
            "--config",
            str(path),
            "--workspace",
            str(path.parent),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(REPO), **env},
    )


def test_config_check_says_the_token_variable_is_unset_and_passes_once_it_is_set(tmp_path: Path) -> None:
    path = write(
        tmp_path, f"- {{kind: telegram, chat_id: {CHAT}, token_env: {TOKEN_ENV}, events: [kill_switch]}}\n"
    )
    p = _check(path, {})
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"environment variable {TOKEN_ENV} is not set" in p.stderr
    assert f"telegram chat {CHAT}" in p.stderr
    p = _check(path, {TOKEN_ENV: TOKEN})
    assert p.returncode == 0, p.stderr
    assert ": ok (" in p.stdout
    assert TOKEN not in p.stdout + p.stderr


def test_config_check_reports_a_bad_notification_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "- {kind: slack}\n")
    p = _check(path, {})
    assert p.returncode == 2
    assert "opsconsole.yaml:10: notifications[0].url: 'url' is required" in p.stderr
