"""`alarms: {kind: alertmanager, ...}` on an environment: read when right, and `opsconsole config
check` naming file, line, key and what is wrong when not (no Alertmanager needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.cli.dispatch import main
from opsconsole.engine.config import ConfigError
from opsconsole.engine.model import AlarmSource
from tests.alertmanager.conftest import TOKEN_ENV, load_ws, write_workspace


def workspace_with(tmp_path: Path, alarms: str) -> Path:
    return write_workspace(tmp_path, "http://127.0.0.1:9", "cfg", alarms=alarms)


def messages(tmp_path: Path, alarms: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_ws(workspace_with(tmp_path, alarms))
    return [(i.key, i.message) for i in info.value.issues]


def test_an_alertmanager_source_is_read(tmp_path: Path) -> None:
    config = load_ws(write_workspace(tmp_path, "http://127.0.0.1:9/", "cfg", timeout="3s"))
    assert config.environments["production"].alarms == AlarmSource(
        kind="alertmanager",
        url="http://127.0.0.1:9",
        timeout=3.0,
        bearer_token_env=TOKEN_ENV,
        matchers=(("test", "cfg"),),
    )
    assert config.environments["staging"].alarms is None


@pytest.mark.parametrize(
    ("alarms", "key", "message"),
    [
        (
            "alarms: {kind: pagerduty, url: 'http://x'}",
            "environments.production.alarms.kind",
            "unknown kind 'pagerduty' (expected one of: alertmanager, cloudwatch)",
        ),
        (
            "alarms: {url: 'http://x'}",
            "environments.production.alarms.kind",
            "'kind' is required",
        ),
        (
            "alarms: {kind: cloudwatch, url: 'http://x'}",
            "environments.production.alarms.url",
            "unknown key",
        ),
        (
            "alarms: {kind: alertmanger, url: 'http://x'}",
            "environments.production.alarms.kind",
            "unknown kind 'alertmanger' (did you mean 'alertmanager'?)",
        ),
        (
            "alarms: {kind: alertmanager}",
            "environments.production.alarms.url",
            "'url' is required",
        ),
        (
            "alarms: {kind: alertmanager, url: 'ftp://x'}",
            "environments.production.alarms.url",
            "expected an http:// or https:// URL, got 'ftp://x'",
        ),
        (
            "alarms: {kind: alertmanager, url: 'http://x', timeout: 0s}",
            "environments.production.alarms.timeout",
            "",
        ),
        (
            "alarms: {kind: alertmanager, url: 'http://x', bearer_token_env: my-token}",
            "environments.production.alarms.bearer_token_env",
            "bearer_token_env names an environment variable (A-Z, 0-9, '_'), got 'my-token'",
        ),
        (
            "alarms: {kind: alertmanager, url: 'http://x', bearer_token_env: A, basic_auth_env: B}",
            "environments.production.alarms.basic_auth_env",
            "use bearer_token_env or basic_auth_env, not both",
        ),
        (
            "alarms: {kind: alertmanager, url: 'http://x', matchers: {'bad-label': x}}",
            "environments.production.alarms.matchers.bad-label",
            "'bad-label' is not a label name",
        ),
        (
            "alarms: {kind: alertmanager, url: 'http://x', token: abc}",
            "environments.production.alarms.token",
            "unknown key 'token'",
        ),
    ],
)
def test_bad_alarm_sources_are_named(tmp_path: Path, alarms: str, key: str, message: str) -> None:
    ((got_key, got_message),) = messages(tmp_path, alarms)
    assert got_key == key
    assert got_message.startswith(message), got_message


def test_config_check_reports_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = workspace_with(
        tmp_path, "alarms: {kind: alertmanager, url: 'http://x', bearer_token_env: A, basic_auth_env: B}"
    )
    code = main(["config", "check", "--workspace", str(ws), "--config", str(ws / "opsconsole.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "opsconsole.yaml:" in err
    assert "environments.production.alarms.basic_auth_env" in err and "not both" in err


def test_config_check_accepts_a_good_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = write_workspace(tmp_path, "http://127.0.0.1:9", "cfg")
    code = main(["config", "check", "--workspace", str(ws), "--config", str(ws / "opsconsole.yaml")])
    assert code == 0, capsys.readouterr().err
