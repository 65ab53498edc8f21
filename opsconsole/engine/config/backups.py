"""The `backups:` section: targets by name, what each backs up, where copies go and how many stay.

    backups:
      workspace:
        kind: files
        paths: [/etc/app]          # files and directories
        state: true                # the console's own database, copied with SQLite's backup API
        schedule: 6h
        keep_last: 7
      orders-db:
        kind: postgres
        dsn: postgresql://backup@db.internal/orders
        password_env: ORDERS_DB_PASSWORD   # or a pgpass file; never written in the config
        storage: {directory: /srv/backups/orders}

Flag files and the configuration go into every files target unless `flags: false` or
`configuration: false`. A password in the DSN is refused: it would be shown and logged with it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..backups.model import BackupTarget
from .fields import Fields
from .values import positive_duration, resolve_path
from .yamlsrc import YamlSource

_COMMON = ("kind", "storage", "keep_last", "keep_daily", "keep_weekly", "schedule", "stale_after")
_FILES = ("paths", "state", "flags", "configuration")
_POSTGRES = ("dsn", "password_env", "timeout")
_S3 = "S3 storage is not available in this version; use storage: {directory: PATH}"


def read_backups(src: YamlSource, main: Fields, base: Path) -> dict[str, BackupTarget]:
    f = main.mapping("backups")
    out: dict[str, BackupTarget] = {}
    for name, node in f or ():
        path = f.path(name) if f else name
        if not name.replace("-", "_").replace(".", "_").isidentifier():
            src.issue(node, path, f"target name {name!r}: use letters, digits, '-', '_' and '.'")
            continue
        t = src.mapping(node, path, (*_COMMON, *_FILES, *_POSTGRES), required=("kind",))
        if t is None:
            continue
        kind = t.choice("kind", ("files", "postgres"))
        if kind is None:
            continue
        target = _target(t, name, kind, base)
        if target is not None:
            out[name] = target
    return out


def _target(t: Fields, name: str, kind: str, base: Path) -> BackupTarget | None:
    other = _POSTGRES if kind == "files" else _FILES
    for key in other:
        if key in t:
            t.issue(key, f"'{key}' is for a {'postgres' if kind == 'files' else 'files'} target, not {kind}")
    keep = {
        k: t.integer(k, None, minimum=1, maximum=100_000) for k in ("keep_last", "keep_daily", "keep_weekly")
    }
    common = {
        "name": name,
        "kind": kind,
        "directory": _storage(t, base),
        "schedule": t.parsed("schedule", positive_duration, None),
        "stale_after": t.parsed("stale_after", positive_duration, None),
        "where": t.where(),
        **keep,
    }
    if kind == "files":
        paths = tuple(str(resolve_path(base, p)) for p in t.texts("paths", [], nonempty=True))
        state = t.boolean("state", False)
        flags = t.boolean("flags", True)
        configuration = t.boolean("configuration", True)
        if not paths and not state and not flags and not configuration:
            t.issue(None, "a files target needs paths, or state, flags or configuration switched on")
        return BackupTarget(**common, paths=paths, state=state, flags=flags, configuration=configuration)
    if not t.require("dsn"):
        return None
    dsn = t.text("dsn", "")
    try:
        parts = urlsplit(dsn)
        has_password = parts.password is not None
    except ValueError:
        t.issue("dsn", "not a valid postgresql:// URL")
        return None
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        t.issue("dsn", "expected postgresql://user@host[:port]/database")
        return None
    if has_password:
        t.issue("dsn", "a password in the DSN would be shown and logged; use password_env or a pgpass file")
        return None
    password_env = t.text("password_env")
    if password_env is not None and not password_env.replace("_", "A").isalnum():
        t.issue("password_env", f"expected the name of an environment variable, got {password_env!r}")
    timeout = t.parsed("timeout", positive_duration, 3600.0)
    return BackupTarget(**common, dsn=dsn, password_env=password_env, timeout=timeout)


def _storage(t: Fields, base: Path) -> str | None:
    s = t.mapping(
        "storage",
        ("directory",),
        unavailable={k: _S3 for k in ("s3", "bucket", "prefix", "endpoint")},
    )
    if s is None:
        return None
    directory = s.text("directory")
    return None if directory is None else str(resolve_path(base, directory))
