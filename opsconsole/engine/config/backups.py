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
        storage:
          directory: /srv/backups/orders   # optional: <workspace>/backups/<name> by default
          s3: {bucket: acme-backups, prefix: orders, endpoint: https://s3.internal:9000, region: eu-west-1}

Flag files and the configuration go into every files target unless `flags: false` or
`configuration: false`. A password in the DSN is refused: it would be shown and logged with it.

With `s3:` every run keeps its local copy and uploads it to `s3://bucket/prefix/<run>`; `prefix`
defaults to the target's name (`prefix: /` is the bucket's top), `endpoint` to AWS. S3 credentials
come from boto3's usual chain (environment, shared files, instance role) and are refused in the
configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from ..backups.model import BackupTarget, S3Storage
from .fields import Fields
from .values import positive_duration, resolve_path
from .yamlsrc import YamlSource

_COMMON = ("kind", "storage", "keep_last", "keep_daily", "keep_weekly", "schedule", "stale_after")
_FILES = ("paths", "state", "flags", "configuration")
_POSTGRES = ("dsn", "password_env", "timeout")
_S3_KEYS = ("bucket", "prefix", "endpoint", "region")
_MISPLACED: Final = {k: f"'{k}' belongs under storage.s3: {{bucket: ..., {k}: ...}}" for k in _S3_KEYS}
_SECRET = (
    "S3 credentials never go in the configuration (they would be shown and logged): boto3 reads them "
    "from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws or the instance role"
)
_CREDENTIALS: Final = {
    k: _SECRET
    for k in ("access_key", "secret_key", "access_key_id", "secret_access_key", "session_token", "profile")
}


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
    directory, s3 = _storage(t, base, name)
    common = {
        "name": name,
        "kind": kind,
        "directory": directory,
        "s3": s3,
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


def _storage(t: Fields, base: Path, name: str) -> tuple[str | None, S3Storage | None]:
    s = t.mapping("storage", ("directory", "s3"), unavailable=_MISPLACED)
    if s is None:
        return None, None
    directory = s.text("directory")
    return (None if directory is None else str(resolve_path(base, directory))), _s3(s, name)


def _s3(s: Fields, name: str) -> S3Storage | None:
    f = s.mapping("s3", _S3_KEYS, required=("bucket",), unavailable=_CREDENTIALS)
    if f is None or "bucket" not in f:
        return None
    ok = True
    bucket = f.text("bucket")
    if bucket is None:
        return None
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        f.issue(
            "bucket",
            f"{bucket!r} is not an S3 bucket name: 3-63 lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit",
        )
        ok = False
    prefix = f.text("prefix", name).strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        f.issue("prefix", f"{prefix!r}: empty, '.' or '..' parts in a key prefix")
        ok = False
    endpoint = f.text("endpoint")
    if endpoint is not None:
        try:
            parts = urlsplit(endpoint)
            bad = parts.scheme not in ("http", "https") or not parts.hostname or parts.port == 0
            secret = parts.username is not None or parts.password is not None
        except ValueError:
            bad, secret = True, False
        if secret:
            f.issue(
                "endpoint", "credentials in the endpoint URL would be shown and logged; use boto3's chain"
            )
            ok = False
        elif bad or (parts.path not in ("", "/")) or parts.query:
            f.issue("endpoint", f"expected http(s)://host[:port], got {endpoint!r}")
            ok = False
    region = f.text("region")
    if region is not None and not _REGION.fullmatch(region):
        f.issue("region", f"{region!r} is not a region name (like eu-west-1)")
        ok = False
    if not ok:
        return None
    return S3Storage(bucket=bucket, prefix=prefix, endpoint=endpoint, region=region)


_BUCKET: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,30}[a-z0-9]")
