"""The engine itself on each store kind: a rollout approved and aborted, flags set and scheduled,
the kill switch recorded, the audit chain verified; and the configuration's `store` and
`store_password_env` checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from opsconsole.engine import Rejected
from opsconsole.engine.config import ConfigError, load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor, RolloutState
from opsconsole.engine.store.postgres import PostgresStore
from tests.pg.server import PASSWORD
from tests.store.people import People
from tests.store.test_concurrent_approvals import awaiting_approval, write_config


def test_rollouts_flags_schedules_and_the_kill_switch(store_url: str, people: People, tmp_path: Path) -> None:
    config = write_config(tmp_path, store_url, need=1)
    ws = tmp_path / "ws"
    as_starter, as_approver = people.add("starter", "approver00")  # on PostgreSQL, two logins
    rid = awaiting_approval(config, ws, as_starter)
    starter, approver = as_starter.engine(config, ws), as_approver.engine(config, ws)
    assert isinstance(starter.store, PostgresStore) == store_url.startswith("postgresql://")
    approver.approve(rid, "looks good")
    assert starter.rollout(rid).phase_index == 1
    starter.set_flag("staging", "new_checkout", 40, "by hand")
    assert [h["new"] for h in starter.flag_history("staging", "new_checkout")][-1] == 40
    schedule = starter.schedule_flag("staging", "enable_new_checkout", [(9e9, False)], "later")
    result = starter.kill("test kill")
    assert result.recorded and rid in result.aborted
    assert starter.rollout(rid).state is RolloutState.ABORTED
    with starter.store.read() as tx:
        stopped = tx.get_schedule(schedule.id)
    assert stopped is not None and stopped.ended_reason
    with pytest.raises(Rejected):
        approver.approve(rid, "too late")
    assert starter.verify_audit().ok
    actions = [e.action for e in starter.audit_events()]
    assert "rollout.approval" in actions and "flag.set" in actions
    starter.close()
    approver.close()


def write_main(tmp_path: Path, store: str, extra: str = "") -> Path:
    path = tmp_path / "opsconsole.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            store: {store}
            {extra}
            environments:
              staging:
                flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}
            flags:
              f: {{default: false}}
            """
        )
    )
    return path


def test_config_refuses_a_password_in_the_store_url_without_showing_it(tmp_path: Path) -> None:
    path = write_main(tmp_path, "postgresql://ops:Hunter2-pw@db.internal/ops")
    with pytest.raises(ConfigError) as info:
        load_config(path, {"WORKSPACE": str(tmp_path)})
    text = "\n".join(str(i) for i in info.value.issues)
    assert "a password in the store URL would be shown and logged" in text
    assert "Hunter2-pw" not in text
    path = write_main(tmp_path, "postgresql://ops@db.internal/ops", "store_password_env: 'not a name'")
    with pytest.raises(ConfigError, match="store_password_env.*expected the name of an environment variable"):
        load_config(path, {"WORKSPACE": str(tmp_path)})


def test_engine_takes_the_store_password_from_the_named_variable(
    pg_url: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("PGPASSWORD")
    path = write_main(tmp_path, pg_url, "store_password_env: OPS_STORE_PW")
    cfg = load_config(path, {"WORKSPACE": str(tmp_path)})
    assert cfg.store_password_env == "OPS_STORE_PW"
    e = Engine(cfg, tmp_path, Actor("root", "test"), environ={"OPS_STORE_PW": PASSWORD})
    assert e.verify_audit().ok
    e.close()
