"""The `backups:` section: files and postgres targets load with their defaults, and every mistake is
reported at its line under its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.engine.config import ConfigError, load_config


def load(tmp_path: Path, section: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "opsconsole.yaml"
    path.write_text("backups:\n" + section)
    return load_config(path, {"WORKSPACE": str(tmp_path / "ws")})


def messages(tmp_path: Path, section: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, section)
    return [str(i) for i in info.value.issues]


def test_files_and_postgres_targets(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """\
  site:
    kind: files
    paths: [data, /etc/hosts]
    state: true
    schedule: 6h
    keep_last: 7
    keep_daily: 7
    keep_weekly: 4
  orders:
    kind: postgres
    dsn: postgresql://backup@db.internal:5432/orders
    password_env: ORDERS_PW
    storage: {directory: /srv/backups/orders}
    timeout: 10m
""",
    )
    site, orders = cfg.backups["site"], cfg.backups["orders"]
    assert site.kind == "files" and site.paths == (str(tmp_path / "data"), "/etc/hosts")
    assert site.state and site.flags and site.configuration and site.directory is None
    assert (site.schedule, site.keep_last, site.keep_daily, site.keep_weekly) == (21600, 7, 7, 4)
    assert site.stale_limit == 43200
    assert orders.kind == "postgres" and orders.password_env == "ORDERS_PW"
    assert orders.directory == "/srv/backups/orders" and orders.timeout == 600
    assert orders.stale_limit == 7 * 86400


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("  x:\n    paths: [a]\n", "backups.x.kind"),
        ("  x:\n    kind: tape\n", "backups.x.kind"),
        ("  x:\n    kind: files\n    pathz: [a]\n", "unknown key 'pathz'"),
        ("  x:\n    kind: files\n    dsn: postgresql://a@b/c\n", "'dsn' is for a postgres target"),
        ("  x:\n    kind: postgres\n", "'dsn' is required"),
        ("  x:\n    kind: postgres\n    dsn: postgresql://u:secret@h/db\n", "password in the DSN"),
        ("  x:\n    kind: postgres\n    dsn: mysql://u@h/db\n", "expected postgresql://"),
        (
            "  x:\n    kind: postgres\n    dsn: postgresql://u@h/db\n    password_env: 'A B'\n",
            "environment variable",
        ),
        ("  x:\n    kind: files\n    paths: [a]\n    keep_last: 0\n", "backups.x.keep_last"),
        ("  x:\n    kind: files\n    paths: [a]\n    schedule: soon\n", "backups.x.schedule"),
        ("  x:\n    kind: files\n    paths: [a]\n    storage: {bucket: b}\n", "belongs under storage.s3"),
        (
            "  x:\n    kind: files\n    state: false\n    flags: false\n    configuration: false\n",
            "needs paths",
        ),
    ],
)
def test_mistakes_are_reported_with_their_path(tmp_path: Path, section: str, expected: str) -> None:
    found = messages(tmp_path, section)
    assert any(expected in m for m in found), found
    assert all("opsconsole.yaml:" in m for m in found), found


def test_password_is_not_echoed(tmp_path: Path) -> None:
    found = messages(tmp_path, "  x:\n    kind: postgres\n    dsn: postgresql://u:hunter2@h/db\n")
    assert not any("hunter2" in m for m in found)
