"""A `kind: postgres` backup target through the engine, as `opsconsole backup` drives it, on the
real server: run (pg_dump -Fc, row counts in the dump's snapshot), verify (a scratch restore really
runs and is dropped), change the data, restore into a new database and find the original rows."""

from __future__ import annotations

import textwrap
from pathlib import Path

from opsconsole.engine import Actor, Engine, load_config

from .server import PASSWORD, PASSWORD_ENV, PgServer

REPO = Path(__file__).resolve().parents[2]


def engine_for(tmp_path: Path, pg: PgServer, db: str) -> Engine:
    (tmp_path / "opsconsole.yaml").write_text(
        textwrap.dedent(
            f"""
            roles: {{default: viewer, users: {{root: admin}}}}
            environments:
              production:
                flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
            flags: "{REPO}/config/flags.yaml"
            kill_switch: {{flags_off: [enable_autonomous_improvements], flags_on: [emergency_shutdown]}}
            backups:
              shop:
                kind: postgres
                dsn: "{pg.dsn(db)}"
                password_env: {PASSWORD_ENV}
                timeout: 60s
            """
        )
    )
    config = load_config(tmp_path / "opsconsole.yaml", {"WORKSPACE": str(tmp_path / "ws")})
    return Engine(config, tmp_path / "ws", Actor("root", "test"), environ=pg.environ())


def test_backup_verify_change_restore_through_the_engine(
    tmp_path: Path, pg_server: PgServer, sample_db: str
) -> None:
    engine = engine_for(tmp_path, pg_server, sample_db)
    run = engine.run_backup("shop")
    assert run.status == "ok", run
    before = pg_server.databases()
    checked = engine.verify_backup("shop", run.id)
    assert checked.status == "verified", checked
    assert pg_server.databases() == before  # the scratch database was dropped
    with pg_server.connect(sample_db) as conn:
        conn.execute("DELETE FROM orders WHERE id > 10")
    result = engine.restore_backup("shop", run.id)
    assert result.into != sample_db
    with pg_server.connect(result.into) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1500,)
    status = engine.backup_status("shop")["shop"]
    assert status.state == "ok", status
    assert PASSWORD not in repr(engine.backups("shop"))
