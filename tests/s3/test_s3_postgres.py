"""A postgres target with S3 storage on the real server and the real S3 endpoint: the dump goes up
whole, verification restores the local copy into a scratch database and hashes the S3 copy, and with
the local dump gone the restore comes from S3 alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

from opsconsole.engine import Actor, Engine, load_config
from tests.pg.server import PASSWORD, PASSWORD_ENV, PgServer

from .conftest import SECRET_KEY, keys


def engine_for(tmp_path: Path, pg: PgServer, db: str, endpoint: str, bucket: str) -> Engine:
    (tmp_path / "opsconsole.yaml").write_text(
        textwrap.dedent(
            f"""
            roles: {{default: viewer, users: {{root: admin}}}}
            backups:
              shop:
                kind: postgres
                dsn: "{pg.dsn(db)}"
                password_env: {PASSWORD_ENV}
                timeout: 60s
                storage:
                  s3: {{bucket: {bucket}, endpoint: "{endpoint}"}}
            """
        )
    )
    config = load_config(tmp_path / "opsconsole.yaml", {"WORKSPACE": str(tmp_path / "ws")})
    return Engine(config, tmp_path / "ws", Actor("root", "test"), environ=pg.environ())


def test_postgres_backup_to_s3_verify_and_restore_from_s3_alone(
    tmp_path: Path,
    pg_server: PgServer,  # noqa: F811
    sample_db: str,  # noqa: F811
    s3_server: str,
    bucket: str,
) -> None:
    engine = engine_for(tmp_path, pg_server, sample_db, s3_server, bucket)
    run = engine.run_backup("shop")
    assert run.status == "ok", run.reason
    local = Path(run.locations[0])
    assert run.locations[1] == f"s3://{bucket}/shop/{local.name}"
    assert keys(s3_server, bucket) == [f"shop/{local.name}"]
    checked = engine.verify_backup("shop", run.id)
    assert checked.status == "verified", checked.verify_result
    assert checked.verified_how == "scratch restore, row counts, S3 sha256"
    assert f"{run.locations[1]}: sha256 matches" in checked.verify_result
    local.unlink()
    with pg_server.connect(sample_db) as conn:
        conn.execute("DELETE FROM orders WHERE id > 10")
    result = engine.restore_backup("shop", run.id)
    with pg_server.connect(result.into) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1500,)
    assert not list(local.parent.iterdir())  # the downloaded dump was removed
    shown = repr(engine.backups("shop")) + repr(engine.audit_events("backup:shop"))
    assert PASSWORD not in shown and SECRET_KEY not in shown
