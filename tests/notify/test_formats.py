"""What each format puts on the wire, delivered through the store's outbox to a receiver on
127.0.0.1: generic JSON, Slack's text + blocks, and the Telegram Bot API's sendMessage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.engine.model import Notification
from opsconsole.engine.store import open_store
from opsconsole.engine.store.sqlite import Outboxed
from opsconsole.engine.targets import notify

from .conftest import CHAT, TOKEN, TOKEN_ENV, Receiver

AT = 1_790_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[object]:
    s = open_store(f"sqlite:///{tmp_path}/state.db")
    try:
        yield s
    finally:
        s.close()


def send(store: object, n: Notification, event: str, message: str, **data: object) -> list[Outboxed]:
    with store.transaction() as tx:  # type: ignore[attr-defined]
        ids = notify.enqueue(tx, [n], event, message, AT, **data)
    notify.deliver(store, ids, budget=5)
    with store.read() as tx:  # type: ignore[attr-defined]
        rows: list[Outboxed] = tx.list_notifications(ids)
    return rows


def test_webhook_posts_the_event_as_generic_json(store: object, receiver: Receiver) -> None:
    n = Notification(kind="webhook", url=f"{receiver.url}/hook", timeout=1.0)
    [row] = send(store, n, "rollback", "rollout r-1 (fast) rolling back: error_rate", rollout="r-1")
    assert row.state == "delivered"
    [(path, body)] = receiver.posts
    assert path == "/hook"
    assert body == {
        "event": "rollback",
        "message": "rollout r-1 (fast) rolling back: error_rate",
        "at": AT,
        "rollout": "r-1",
    }


def test_slack_gets_text_and_blocks_with_its_control_characters_escaped(
    store: object, receiver: Receiver
) -> None:
    n = Notification(kind="slack", url=f"{receiver.url}/services/T0/B0/secret", timeout=1.0)
    message = "alarm <!channel> & <http://evil|click> firing"
    [row] = send(store, n, "alarm_firing", message, alarm="errors", environment="production")
    assert row.state == "delivered"
    [(path, body)] = receiver.posts
    assert path == "/services/T0/B0/secret"
    assert body["text"] == f"Alarm firing: {message}"
    header, section, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Alarm firing"}}
    assert section["text"] == {
        "type": "mrkdwn",
        "text": "alarm &lt;!channel&gt; &amp; &lt;http://evil|click&gt; firing",
    }
    assert context["type"] == "context"
    ctx = context["elements"][0]["text"]
    assert "alarm: errors" in ctx and "environment: production" in ctx and "2026-09-21" in ctx


def test_telegram_calls_send_message_with_the_token_from_the_environment(
    store: object, receiver: Receiver, token: str
) -> None:
    n = Notification(kind="telegram", url=receiver.url, chat_id=CHAT, token_env=TOKEN_ENV, timeout=1.0)
    [row] = send(store, n, "kill_switch", "kill switch engaged by alice: <b>drill</b>")
    assert row.state == "delivered" and row.last_error == ""
    [(path, body)] = receiver.posts
    assert path == f"/bot{token}/sendMessage"
    assert body["chat_id"] == CHAT and body["disable_web_page_preview"] is True
    assert "parse_mode" not in body  # plain text: remote text never becomes markup
    assert body["text"].splitlines()[:2] == [
        "Kill switch engaged",
        "kill switch engaged by alice: <b>drill</b>",
    ]
    # What the store keeps names the variable, never the token.
    assert row.url == f"{receiver.url}/bot{{env:{TOKEN_ENV}}}/sendMessage"
    assert TOKEN not in row.url + row.body


def test_telegram_refusing_the_token_is_retried_and_the_error_never_shows_it(
    store: object, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "987654321:WRONG-secret-token"
    monkeypatch.setenv(TOKEN_ENV, wrong)
    n = Notification(kind="telegram", url=receiver.url, chat_id=CHAT, token_env=TOKEN_ENV, timeout=1.0)
    [row] = send(store, n, "rollback", "rolling back")
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "HTTP 401: Unauthorized")
    assert row.next_at >= time.time()  # a pause before the next attempt


def test_telegram_without_its_token_variable_says_which_variable(store: object, receiver: Receiver) -> None:
    n = Notification(
        kind="telegram", url=receiver.url, chat_id=CHAT, token_env="OPSCONSOLE_UNSET_VAR", timeout=1.0
    )
    [row] = send(store, n, "rollback", "rolling back")
    assert row.state == "pending" and row.last_error == (
        "environment variable OPSCONSOLE_UNSET_VAR is not set (it holds the bot token)"
    )
    assert receiver.posts == []


def test_a_connection_error_to_telegram_masks_the_token(store: object, token: str) -> None:
    from .conftest import free_port

    n = Notification(
        kind="telegram", url=f"http://127.0.0.1:{free_port()}", chat_id=CHAT, token_env=TOKEN_ENV, timeout=1.0
    )
    # httpx names the URL it failed on in some errors: whatever it says, the token is masked.
    error = notify._post(notify.target_url(n), b"{}", 1.0)
    assert error.startswith("ConnectError") and token not in error
    masked = notify._masked(f"failed on http://127.0.0.1/bot{token}/sendMessage", [token])
    assert token not in masked and "/bot***/sendMessage" in masked


def test_only_the_selected_events_are_written(store: object, receiver: Receiver) -> None:
    picky = Notification(kind="webhook", url=f"{receiver.url}/picky", events=("kill_switch",), timeout=1.0)
    everything = Notification(kind="webhook", url=f"{receiver.url}/all", timeout=1.0)
    with store.transaction() as tx:  # type: ignore[attr-defined]
        ids = notify.enqueue(tx, [picky, everything], "approval_needed", "r-1 needs approval", AT)
        ids += notify.enqueue(tx, [picky, everything], "kill_switch", "engaged", AT)
    notify.deliver(store, ids, budget=5)
    got = sorted((path, b["event"]) for path, b in receiver.posts)
    assert got == [("/all", "approval_needed"), ("/all", "kill_switch"), ("/picky", "kill_switch")]
