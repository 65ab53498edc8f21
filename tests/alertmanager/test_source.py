"""The Alertmanager alarm source against the session's real Alertmanager: alerts posted through its
API and read back (severities, labels, annotations), silenced and inhibited ones shown as such, the
`alarms` gate on them, and the faults: a dead, a hanging and a garbage-answering Alertmanager."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.engine import AlarmSourceError
from opsconsole.engine.alarms import FIRING, INHIBITED, SILENCED, UNKNOWN, AlarmStatus
from opsconsole.engine.checks import check_now
from opsconsole.engine.model import Verdict
from opsconsole.engine.observe import Observer
from tests.alertmanager.conftest import (
    TOKEN,
    Alertmanager,
    alert,
    engine_for,
    free_port,
    load_ws,
    write_workspace,
)


def read_alarms(ws: Path) -> dict[str, AlarmStatus]:
    """What the runner's observer holds after one tick's reads, keyed by alert name."""

    async def once() -> dict[str, AlarmStatus]:
        observer = Observer(load_ws(ws))
        try:
            await observer.refresh((), time.time())
            return {a.name: a for a in observer.evaluate_alarms(time.time()).values()}
        finally:
            await observer.close()

    return asyncio.run(once())


def wait_for(check, what: str, seconds: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_alerts_are_read_back_with_severities_labels_and_annotations(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    alertmanager.post_alerts(
        [
            alert(test_id, "OpsDown", {"summary": "checkout is down"}, severity="critical"),
            alert(test_id, "OpsErrors", {"description": "5xx above 2%"}, severity="high", service="checkout"),
            alert(test_id, "OpsSlow", severity="warning"),
            alert(test_id, "OpsNote", severity="info"),
            alert(test_id, "OpsOdd", severity="whatever"),
            alert("someone-else", "OpsOther", severity="critical"),
        ]
    )
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    alarms = read_alarms(ws)
    assert set(alarms) == {"OpsDown", "OpsErrors", "OpsSlow", "OpsNote", "OpsOdd"}  # filtered by matchers
    assert {n: a.severity for n, a in alarms.items()} == {
        "OpsDown": "P0",
        "OpsErrors": "P1",
        "OpsSlow": "P2",
        "OpsNote": "P3",
        "OpsOdd": "P2",
    }
    errors = alarms["OpsErrors"]
    assert errors.state == FIRING
    assert errors.source == "alertmanager"
    assert errors.environment == "production"
    assert dict(errors.labels)["service"] == "checkout"
    assert dict(errors.annotations) == {"description": "5xx above 2%"}
    assert errors.reason == "5xx above 2%"
    assert errors.since is not None and time.time() - 120 < errors.since < time.time()
    assert alarms["OpsDown"].reason == "checkout is down"


def test_silenced_and_inhibited_alerts_are_shown_as_such(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    alertmanager.post_alerts(
        [
            alert(test_id, "OpsDatacenterDown", severity="critical"),
            alert(test_id, "OpsHostDown", severity="high"),
            alert(test_id, "OpsDiskFull", severity="warning"),
        ]
    )
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    engine = engine_for(ws, "bob")
    silence_id = engine.silence_alarms("production", {"alertname": "OpsDiskFull"}, 600, "disk swap tonight")
    alarms = wait_for(
        lambda: (a := read_alarms(ws)) and a["OpsHostDown"].state == INHIBITED and a, "inhibition"
    )
    assert alarms["OpsDatacenterDown"].state == FIRING
    assert alarms["OpsDiskFull"].state == SILENCED
    assert alarms["OpsDiskFull"].silenced_by == (silence_id,)
    assert silence_id in alarms["OpsDiskFull"].reason
    # The silence is scoped to the environment's matchers as well as the alert's name, and audited.
    (stored,) = [s for s in alertmanager.silences(test_id) if s["id"] == silence_id]
    assert {m["name"]: m["value"] for m in stored["matchers"]} == {
        "alertname": "OpsDiskFull",
        "test": test_id,
    }
    assert stored["createdBy"] == "bob" and stored["comment"] == "disk swap tonight"
    (event,) = [e for e in engine.audit_events() if e.action == "alarm.silence"]
    assert event.target == f"silence:production/{silence_id}"
    assert event.data["reason"] == "disk swap tonight" and event.data["duration"] == 600


def test_alarms_gate_fails_on_a_firing_p1_alert_and_passes_once_it_is_silenced(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    engine = engine_for(ws, "bob")
    rollout = engine.start_rollout("guarded", "test")

    def gate() -> tuple[str, str]:
        ((_, v),) = asyncio.run(check_now(engine, rollout.id))
        return v.status, v.reason

    assert gate()[0] == Verdict.PASS
    alertmanager.post(test_id, "OpsCheckoutErrors", severity="high")
    status, reason = gate()
    assert status == Verdict.FAIL and "OpsCheckoutErrors" in reason
    silence_id = engine.silence_alarms(
        "production", {"alertname": "OpsCheckoutErrors"}, 300, "known, fix rolling"
    )
    assert wait_for(lambda: gate()[0] == Verdict.PASS, "the gate to pass once silenced")
    engine.expire_silence("production", silence_id, "fix is out")
    assert wait_for(lambda: gate()[0] == Verdict.FAIL, "the gate to fail again once the silence expired")
    (event,) = [e for e in engine.audit_events() if e.action == "alarm.unsilence"]
    assert event.data == {"reason": "fix is out"}


def test_viewers_and_read_only_sessions_cannot_silence(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    from opsconsole.engine import Forbidden

    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    with pytest.raises(Forbidden, match="carol is viewer, needs operator"):
        engine_for(ws, "carol").silence_alarms("production", {"alertname": "X"}, 60, "no")
    with pytest.raises(Forbidden, match="read-only"):
        engine_for(ws, "bob", read_only=True).silence_alarms("production", {"alertname": "X"}, 60, "no")
    with pytest.raises(ValueError, match="needs a reason"):
        engine_for(ws, "bob").silence_alarms("production", {"alertname": "X"}, 60, " ")
    with pytest.raises(ValueError, match="at most 30d"):
        engine_for(ws, "bob").silence_alarms("production", {"alertname": "X"}, 90 * 86400, "long")
    assert alertmanager.silences(test_id) == []


# ---------------------------------------------------------------------------------------- faults


class _Hang(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(5)

    def log_message(self, *args: object) -> None:
        pass


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with 401 and the request's Authorization header in the body."""

    def do_GET(self) -> None:
        body = f"denied for {self.headers.get('Authorization')}".encode()
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Garbage(_Echo):
    def do_GET(self) -> None:
        body = b'{"not": "a list"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as s:  # nothing listens there once this closes
        s.bind(("127.0.0.1", port))
    return port


def test_a_dead_alertmanager_makes_the_gate_unknown_with_the_reason(tmp_path: Path, token: str) -> None:
    ws = write_workspace(tmp_path, f"http://127.0.0.1:{_closed_port()}", "dead")
    alarms = read_alarms(ws)
    down = alarms["alertmanager"]
    assert down.state == UNKNOWN and down.source_failed
    assert "ConnectError" in down.reason and "127.0.0.1" in down.reason
    engine = engine_for(ws, "bob")
    rollout = engine.start_rollout("guarded", "test")
    ((_, v),) = asyncio.run(check_now(engine, rollout.id))
    assert v.status == Verdict.UNKNOWN
    assert "alarm source of production" in v.reason and "ConnectError" in v.reason
    with pytest.raises(AlarmSourceError, match="ConnectError"):
        engine.silence_alarms("production", {"alertname": "X"}, 60, "down anyway")
    assert not [e for e in engine.audit_events() if e.action == "alarm.silence"]


def test_a_hanging_alertmanager_is_unknown_within_its_timeout(tmp_path: Path, token: str) -> None:
    with serving(_Hang) as url:
        ws = write_workspace(tmp_path, url, "hang", timeout="0.5s")
        t0 = time.monotonic()
        alarms = read_alarms(ws)
        took = time.monotonic() - t0
    assert took < 2.0
    assert alarms["alertmanager"].state == UNKNOWN
    assert "no answer within 0.5s" in alarms["alertmanager"].reason


def test_garbage_is_unknown_not_all_clear(tmp_path: Path, token: str) -> None:
    with serving(_Garbage) as url:
        ws = write_workspace(tmp_path, url, "garbage")
        alarms = read_alarms(ws)
    assert alarms["alertmanager"].state == UNKNOWN
    assert "alerts are not a list" in alarms["alertmanager"].reason


def test_the_token_never_appears_in_errors_even_when_the_server_echoes_it(tmp_path: Path, token: str) -> None:
    with serving(_Echo) as url:
        ws = write_workspace(tmp_path, url, "echo")
        alarms = read_alarms(ws)
        with pytest.raises(AlarmSourceError) as raised:
            engine_for(ws, "bob").silences("production")
    reason = alarms["alertmanager"].reason
    assert "HTTP 401" in reason and "denied for Bearer ***" in reason
    assert TOKEN not in reason and TOKEN not in str(raised.value)


def test_a_firing_alert_stays_firing_while_the_source_is_unreachable(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    from opsconsole.engine.sources.alertmanager import AlertmanagerSource

    alertmanager.post(test_id, "OpsStuck", severity="high")
    config = load_ws(write_workspace(tmp_path, alertmanager.url, test_id)).environments["production"].alarms
    assert config is not None
    src = AlertmanagerSource("production", config)

    async def run() -> list[AlarmStatus]:
        import httpx

        async with httpx.AsyncClient() as client:
            await src.refresh(client, 1.0)
            src.config = type(config)(kind=config.kind, url=f"http://127.0.0.1:{_closed_port()}", timeout=1)
            await src.refresh(client, 2.0)
            await src.refresh(client, 3.0)
        return src.statuses()

    statuses = {a.name: a for a in asyncio.run(run())}
    assert statuses["OpsStuck"].state == FIRING
    assert "unreachable" in statuses["OpsStuck"].reason
    assert statuses["alertmanager"].state == UNKNOWN
    assert statuses["alertmanager"].since == 2.0  # since the first failed read, not the latest


# ---------------------------------------------------------------------------------------- the runner


def test_the_runner_holds_the_phase_while_a_p1_alert_fires_and_completes_it_once_silenced(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    from opsconsole.engine import Runner

    alertmanager.post(test_id, "OpsCheckoutErrors", severity="high")
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    engine = engine_for(ws, "bob")
    rid = engine.start_rollout("guarded", "test").id

    async def go() -> None:
        from opsconsole.engine.model import RolloutState

        runner = Runner(engine)
        try:
            # Steps of 1 s reach 100% in about 2 s; the gate then holds the phase as long as it fires.
            for _ in range(25):
                await runner.tick()
                await asyncio.sleep(0.2)
            held = engine.rollout(rid)
            assert held.state is RolloutState.PROGRESSING and held.step_index == 2, held
            (_, verdict) = engine.verdict_history(rid)[-1]
            assert verdict.status == Verdict.FAIL and "OpsCheckoutErrors" in verdict.reason
            await asyncio.to_thread(
                engine.silence_alarms, "production", {"alertname": "OpsCheckoutErrors"}, 300, "known"
            )
            for _ in range(40):
                await runner.tick()
                if engine.rollout(rid).state is RolloutState.COMPLETED:
                    return
                await asyncio.sleep(0.2)
            raise AssertionError(f"still held: {engine.rollout(rid).reason}")
        finally:
            await runner.observer.close()

    asyncio.run(go())


def test_a_hanging_alertmanager_never_delays_the_runners_tick(tmp_path: Path, token: str) -> None:
    with serving(_Hang) as url:
        ws = write_workspace(tmp_path, url, "hang", timeout="1s")
        engine = engine_for(ws, "bob")
        rid = engine.start_rollout("guarded", "test").id

        async def go() -> tuple[list[float], AlarmStatus]:
            from opsconsole.engine import Runner

            runner = Runner(engine)
            took = []
            try:
                for _ in range(5):
                    t0 = time.monotonic()
                    await runner.tick()
                    took.append(time.monotonic() - t0)
                    await asyncio.sleep(0.5)
                return took, runner.observer.alarms["alertmanager:production:source"]
            finally:
                await runner.observer.close()

        took, down = asyncio.run(go())
    assert max(took) < 0.5, took
    # Unknown from the first tick (not read yet), then with Alertmanager's silence as the reason.
    (_, verdict) = engine.verdict_history(rid)[-1]
    assert verdict.status == Verdict.UNKNOWN
    assert down.state == UNKNOWN and "no answer within 1s" in down.reason


def test_basic_auth_is_sent_and_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    monkeypatch.setenv("OPSCONSOLE_TEST_AM_BASIC", "ops:s3cret-Pass-99")
    with serving(_Echo) as url:
        ws = write_workspace(
            tmp_path,
            url,
            "basic",
            alarms=f"alarms: {{kind: alertmanager, url: '{url}', timeout: 1s, basic_auth_env: OPSCONSOLE_TEST_AM_BASIC}}",
        )
        reason = read_alarms(ws)["alertmanager"].reason
    assert "HTTP 401" in reason and "denied for Basic ***" in reason
    assert "s3cret-Pass-99" not in reason
    assert base64.b64encode(b"ops:s3cret-Pass-99").decode() not in reason


def test_a_missing_credential_variable_is_unknown_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.alertmanager.conftest import TOKEN_ENV

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    ws = write_workspace(tmp_path, f"http://127.0.0.1:{_closed_port()}", "nocred")
    down = read_alarms(ws)["alertmanager"]
    assert down.state == UNKNOWN and down.reason == f"alertmanager: bearer_token_env {TOKEN_ENV} is not set"
