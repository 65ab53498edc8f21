"""A rollout guarded by CloudWatch alarms (moto's server): it steps while the alarms are OK, and rolls
back once one is set to ALARM, the alarm's name in the reason."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

from opsconsole.engine import Actor, Engine
from opsconsole.engine.model import RolloutState as S
from opsconsole.engine.runner import Runner

from .conftest import cw, load, write_config
from .test_alarms import make_alarm


def test_a_cloudwatch_alarm_in_alarm_rolls_a_guarded_canary_back(cw_server: str, tmp_path: Path) -> None:
    prefix = f"SBrb{secrets.token_hex(3)}-"
    alarm = f"{prefix}HighFailureRate"
    make_alarm(cw_server, alarm)
    main = write_config(tmp_path, cw_server, prefix=prefix)
    (tmp_path / "plans" / "p.yaml").write_text(
        "name: p\n"
        "phases:\n"
        "  - name: canary\n"
        "    environment: production\n"
        "    strategy: {kind: canary, flag: new_checkout, steps: [0, 10, 50, 100], step_wait: 1s}\n"
        f"    guards: [{{kind: alarms, none_firing: ['{prefix}*'], failure_limit: 1}}]\n"
    )
    flag_file = tmp_path / "ws" / "flags.json"
    text = (
        main.read_text()
        .replace("flags: {", "flags: {new_checkout: {type: percentage, default: 0}, ", 1)
        .replace(
            "    alarms: {kind: cloudwatch",
            f"    flags: {{kind: file, path: '{flag_file}'}}\n    alarms: {{kind: cloudwatch",
            1,
        )
    )
    main.write_text(text)
    engine = Engine(load(main), tmp_path / "ws", Actor("root", "test"))
    runner = Runner(engine)
    try:
        rid = engine.start_rollout("p", "cloudwatch guard").id

        async def drive() -> S:
            deadline = time.monotonic() + 30
            set_alarm = False
            try:
                while time.monotonic() < deadline:
                    await runner.tick()
                    r = engine.rollout(rid)
                    if r.state in (S.ROLLED_BACK, S.COMPLETED):
                        return r.state
                    if not set_alarm and r.step_index >= 1:
                        cw(cw_server).set_alarm_state(
                            AlarmName=alarm, StateValue="ALARM", StateReason="failures"
                        )
                        set_alarm = True
                    await asyncio.sleep(0.2)
            finally:
                await runner.observer.close()
            raise AssertionError(f"rollout stuck in {engine.rollout(rid).state}")

        assert asyncio.run(drive()) is S.ROLLED_BACK
        reasons = [t["reason"] for t in engine.report(rid).to_dict()["timeline"]]
        assert any(alarm in reason for reason in reasons), reasons
    finally:
        engine.close()
