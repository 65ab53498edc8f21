"""PostgreSQL backups with the real tools: `pg_dump -Fc`, and a restore into a scratch database that
proves the archive restores with the rows it was taken with.

The row counts are taken in the same snapshot as the dump: a REPEATABLE READ transaction exports its
snapshot, `pg_dump --snapshot` dumps exactly that, and the counts run in the exporting transaction
while pg_dump works, so they cost next to nothing in wall time. Verification compares them with the
counts found after a restore into a scratch database, which is always dropped.

The password comes from the variable named by `password_env` or from libpq's pgpass file. It reaches
the tools only through the child's PGPASSWORD, never their command line (which `ps` shows), and no
message carries it or an unredacted DSN. Every call is blocking and bounded by its `timeout`; callers
run them in threads. psycopg (the `postgres` extra) is imported only here, when a call needs it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.engine.backups.errors import BackupError
from opsconsole.engine.fsutil import fsync_dir
from opsconsole.engine.redact import MASK

if TYPE_CHECKING:
    import psycopg

_MAX_NAME = 63
"""PostgreSQL truncates identifiers longer than this; a scratch name must survive intact."""
_CONNECT_TIMEOUT = 10.0
"""The longest one connection attempt may take, whatever time the call has left."""

_TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, 2
"""
# Plain tables only: a partitioned parent's rows are its partitions' rows, counted once each.

_AUTH = ("password authentication failed", "no password supplied", "authentication failed", "pg_hba.conf")
_UNREACHABLE = (
    "connection refused",
    "could not connect",
    "could not translate host name",
    "no route to host",
    "network is unreachable",
    "timeout expired",
    "server closed the connection",
    "connection to server",
)
_CORRUPT = (
    "not appear to be a valid archive",
    "did not find magic string",
    "could not read input file",
    "could not read from input file",
    "end of file",
    "could not uncompress",
    "error returned by inflate",
    "corrupt",
    "unsupported version",
    "bad offset",
    "could not find block id",
)


@dataclass(frozen=True)
class PgDump:
    """A complete `pg_dump -Fc` archive and what it held."""

    path: Path
    """The archive, written under a temporary name and renamed when whole."""
    size: int
    """Bytes on disk."""
    sha256: str
    """Hex digest of the archive."""
    row_counts: dict[str, int]
    """"schema.table" -> rows, counted in the snapshot the archive was dumped from."""
    seconds: float
    """Wall time of the whole dump."""


@dataclass(frozen=True)
class PgCheck:
    """The outcome of restoring an archive into a scratch database and counting its rows."""

    ok: bool
    """Whether every table restored with the rows it had at backup time."""
    reason: str
    """One line: what matched, or what did not."""
    counts: dict[str, int]
    """"schema.table" -> rows found in the scratch restore."""
    scratch: str
    """The scratch database's name (already dropped)."""
    seconds: float
    """Wall time of the whole verification."""


@dataclass(frozen=True)
class _Target:
    """A parsed DSN: libpq parameters without the password, the password, and the database."""

    params: dict[str, str]
    password: str | None
    dbname: str
    shown: str
    environ: Mapping[str, str]

    def conninfo(self, dbname: str | None = None) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo("", **{**self.params, "dbname": dbname or self.dbname})

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.environ.items() if k != "PGPASSWORD"}
        env["LC_MESSAGES"] = "C"  # the reasons below are read from the tools' English messages
        env.setdefault("PGCONNECT_TIMEOUT", str(int(_CONNECT_TIMEOUT)))
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def scrub(self, text: str) -> str:
        """`text` as a message may carry it: one line, the password masked wherever it appears."""
        line = " ".join(text.split())
        if self.password:
            line = line.replace(self.password, MASK)
        return line[:300]


def redact_dsn(dsn: str) -> str:
    """`dsn` (a URL or libpq key=value text) as it may be shown: the password replaced by `***`.

    Unlike a web URL's, a DSN's bare user name is a role, not a token, so it stays readable."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return _KV_PASSWORD.sub(rf"\1{MASK}", dsn)
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    authority, tail = rest[:end], _URL_PASSWORD.sub(rf"\1{MASK}", rest[end:])
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:{MASK}@{hosts}"
    return f"{scheme}://{authority}{tail}"


_URL_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")
_KV_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def dump(
    dsn: str, dest: Path, *, password_env: str | None, environ: Mapping[str, str], timeout: float
) -> PgDump:
    """Dump the database `dsn` names with `pg_dump -Fc` to `dest` (a file, or a directory to put
    `<db>-<UTC stamp>.dump` in), with per-table row counts from the same snapshot."""
    started = time.monotonic()
    deadline = started + timeout
    target = _target(dsn, password_env, environ)
    path = dest / f"{target.dbname}-{_stamp()}.dump" if dest.is_dir() else dest
    partial = path.with_name(f".{path.name}.partial")
    pg_dump = _tool("pg_dump", environ)
    try:
        with _db_errors(target), _connect(target, target.dbname, deadline) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = _scalar(conn, "SELECT pg_export_snapshot()")
            argv = [pg_dump, "-Fc", f"--snapshot={snapshot}", "-f", str(partial), "-d", target.conninfo()]
            with _running(argv, target, deadline) as proc:
                counts = _count_rows(conn)
                _, stderr = _wait(proc, target, deadline, "pg_dump")
            conn.execute("COMMIT")
        if proc.returncode != 0:
            raise _tool_error(target, "pg_dump", stderr)
        size, digest = _fsync_and_hash(partial)
        os.replace(partial, path)
        fsync_dir(path.parent)
    except OSError as exc:
        _discard(partial)
        kind = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "storage"
        raise BackupError(kind, f"writing {path.name}: {os.strerror(exc.errno or 0)}") from None
    except BaseException:
        _discard(partial)
        raise
    return PgDump(path, size, digest, counts, time.monotonic() - started)


def verify(
    dsn: str,
    archive: Path,
    expected: Mapping[str, int],
    *,
    password_env: str | None,
    environ: Mapping[str, str],
    timeout: float,
) -> PgCheck:
    """Restore `archive` into a scratch database on the server `dsn` names, count every table's rows
    and compare them with `expected`; the scratch database is dropped whatever happens.

    An archive that does not restore or restores other rows is a failed check (ok=False, with the
    reason); a server that cannot be reached or refuses us raises BackupError, since that says
    nothing about the archive."""
    started = time.monotonic()
    deadline = started + timeout
    target = _target(dsn, password_env, environ)
    scratch = _name(target.dbname, f"_verify_{_stamp()}_{secrets.token_hex(3)}")
    if not archive.is_file():
        return PgCheck(False, f"archive {archive.name} is missing", {}, scratch, 0.0)
    with _db_errors(target), _connect(target, target.dbname, deadline) as admin:
        admin.execute(_create_sql(scratch))
        try:
            result = _restore_into(target, archive, scratch, deadline, overwrite=False)
            if result is not None:
                return PgCheck(False, result, {}, scratch, time.monotonic() - started)
            with _connect(target, scratch, deadline) as conn:
                counts = _count_rows(conn)
        finally:
            _drop(admin, scratch)
    ok, reason = _compare(expected, counts)
    return PgCheck(ok, reason, counts, scratch, time.monotonic() - started)


def restore(
    dsn: str,
    archive: Path,
    *,
    into: str | None,
    password_env: str | None,
    environ: Mapping[str, str],
    timeout: float,
) -> str:
    """Restore `archive` into a new database (`<db>_restored_<UTC stamp>`, or `into`), or over the
    original when `into` is its name; returns the database restored into.

    Over the original it runs in one transaction, so a failed restore leaves the database as it
    was; the caller has the approval and a safety backup by then. A new database that fails to
    restore is dropped."""
    deadline = time.monotonic() + timeout
    target = _target(dsn, password_env, environ)
    name = into or _name(target.dbname, f"_restored_{_stamp()}")
    if len(name.encode()) > _MAX_NAME:
        raise BackupError("config", f"database name {name!r} is longer than {_MAX_NAME} bytes")
    if not archive.is_file():
        raise BackupError("config", f"archive {archive.name} is missing")
    overwrite = name == target.dbname
    with _db_errors(target), _connect(target, target.dbname, deadline) as admin:
        if not overwrite:
            exists = _scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
            if int(exists):
                raise BackupError("exists", f"database {name!r} exists; restore into a new name")
            admin.execute(_create_sql(name))
        try:
            failure = _restore_into(target, archive, name, deadline, overwrite=overwrite)
        except BaseException:
            if not overwrite:
                _drop(admin, name)
            raise
        if failure is not None:
            if not overwrite:
                _drop(admin, name)
            kind = "corrupt" if failure.startswith("archive is corrupt") else "failed"
            raise BackupError(kind, failure)
    return name


def _target(dsn: str, password_env: str | None, environ: Mapping[str, str]) -> _Target:
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # pragma: no cover - the extra is part of every install that backs up
        raise BackupError("config", "PostgreSQL backups need psycopg: install opsconsole[postgres]") from None
    shown = redact_dsn(dsn)
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except Exception:
        raise BackupError("config", f"cannot parse the DSN {shown}") from None
    password = params.pop("password", None)
    if password_env:
        if password_env not in environ:
            raise BackupError("config", f"the password variable {password_env} is not set")
        password = environ[password_env]
    if "passfile" not in params and environ.get("PGPASSFILE"):
        params["passfile"] = environ["PGPASSFILE"]
    dbname = params.pop("dbname", "") or environ.get("PGDATABASE", "")
    if not dbname:
        raise BackupError("config", f"the DSN {shown} names no database")
    return _Target(params, password, dbname, shown, environ)


def _tool(name: str, environ: Mapping[str, str]) -> str:
    """The PostgreSQL program `name`: from OPSCONSOLE_PG_BIN, else PATH, else the newest Debian one."""
    pg_bin = environ.get("OPSCONSOLE_PG_BIN")
    if pg_bin and os.access(Path(pg_bin) / name, os.X_OK):
        return str(Path(pg_bin) / name)
    found = shutil.which(name, path=environ.get("PATH", os.defpath))
    if found:
        return found
    debian = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: _version(p))
    if debian:
        return str(debian[-1])
    raise BackupError("config", f"{name} is not installed (the PostgreSQL client programs are needed)")


def _version(path: Path) -> tuple[int, str]:
    ver = path.parent.parent.name
    return (int(ver), ver) if ver.isdigit() else (0, ver)


def _connect(target: _Target, dbname: str, deadline: float) -> psycopg.Connection[Any]:
    import psycopg

    left = _left(deadline, target)
    try:
        conn = psycopg.connect(
            target.conninfo(dbname),
            password=target.password,
            connect_timeout=max(1, int(min(left, _CONNECT_TIMEOUT))),
            application_name="opsconsole-backup",
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        raise _connect_error(target, str(exc)) from None
    # Statements may run no longer than the call has left.
    conn.execute(f"SET statement_timeout = {max(1, int(left * 1000))}")
    return conn


@contextlib.contextmanager
def _db_errors(target: _Target) -> Iterator[None]:
    """Turn a psycopg error from a statement into a BackupError of the right kind."""
    import psycopg

    try:
        yield
    except psycopg.errors.QueryCanceled:
        raise BackupError("timeout", f"{target.shown}: a statement ran out of time") from None
    except psycopg.OperationalError as exc:
        raise _connect_error(target, str(exc)) from None
    except psycopg.Error as exc:
        raise BackupError("failed", f"{target.shown}: {target.scrub(_first_line(str(exc)))}") from None


def _connect_error(target: _Target, text: str) -> BackupError:
    low = text.lower()
    where = target.shown
    if any(s in low for s in _AUTH):
        return BackupError("auth", f"{where}: authentication failed (check the password)")
    if "does not exist" in low:
        return BackupError("config", f"{where}: {target.scrub(_first_line(text))}")
    if any(s in low for s in _UNREACHABLE):
        return BackupError("unreachable", f"{where}: {target.scrub(_first_line(text))}")
    return BackupError("failed", f"{where}: {target.scrub(_first_line(text))}")


def _tool_error(target: _Target, tool: str, stderr: str) -> BackupError:
    low = stderr.lower()
    if "no space left" in low or "disk quota" in low:
        return BackupError("disk_full", f"{tool}: no space left on the destination")
    if any(s in low for s in _AUTH) or any(s in low for s in _UNREACHABLE):
        return _connect_error(target, stderr)
    return BackupError("failed", f"{tool}: {target.scrub(_first_line(stderr)) or 'failed'}")


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()]
    line = (errors or lines or [""])[0]
    return re.sub(r"^(pg_dump|pg_restore|psql): (error: )?", "", line)


def _left(deadline: float, target: _Target) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise BackupError("timeout", f"{target.shown}: out of time")
    return left


@contextlib.contextmanager
def _running(argv: list[str], target: _Target, deadline: float) -> Iterator[subprocess.Popen[str]]:
    """A child process that is killed if it is still running when the block is left."""
    _left(deadline, target)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=target.child_env(),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _wait(proc: subprocess.Popen[str], target: _Target, deadline: float, tool: str) -> tuple[str, str]:
    try:
        _, stderr = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise BackupError("timeout", f"{tool} did not finish in time ({target.shown})") from None
    return "", stderr


def _restore_into(
    target: _Target, archive: Path, dbname: str, deadline: float, *, overwrite: bool
) -> str | None:
    """Run pg_restore into `dbname`; None when it restored, else why not (one line)."""
    argv = [_tool("pg_restore", target.environ), "--exit-on-error", "-d", target.conninfo(dbname)]
    if overwrite:
        argv += ["--clean", "--if-exists", "--single-transaction"]
    else:
        # A scratch or new database only needs the data; roles of the origin may not exist here.
        argv += ["--no-owner", "--no-privileges"]
    argv.append(str(archive))
    with _running(argv, target, deadline) as proc:
        _, stderr = _wait(proc, target, deadline, "pg_restore")
    if proc.returncode == 0:
        return None
    low = stderr.lower()
    if any(s in low for s in _AUTH) or any(s in low for s in _UNREACHABLE):
        raise _connect_error(target, stderr)
    if any(s in low for s in _CORRUPT):
        return f"archive is corrupt: {target.scrub(_first_line(stderr))}"
    return f"restore failed: {target.scrub(_first_line(stderr))}"


def _count_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    from psycopg import sql

    counts: dict[str, int] = {}
    for schema, table in conn.execute(_TABLES_SQL).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        counts[f"{schema}.{table}"] = int(_scalar(conn, query))
    return counts


def _scalar(conn: psycopg.Connection[Any], query: Any, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _compare(expected: Mapping[str, int], found: Mapping[str, int]) -> tuple[bool, str]:
    problems = []
    for table in sorted(set(expected) | set(found)):
        if table not in found:
            problems.append(f"{table} missing")
        elif table not in expected:
            problems.append(f"{table} not in the backup's counts")
        elif found[table] != expected[table]:
            problems.append(f"{table} has {found[table]:,} rows, expected {expected[table]:,}")
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return False, "row counts differ: " + "; ".join(problems[:3]) + more
    tables = "table" if len(found) == 1 else "tables"
    return True, f"{len(found)} {tables}, {sum(found.values()):,} rows as at backup"


def _create_sql(name: str) -> Any:
    from psycopg import sql

    return sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))


def _drop(admin: psycopg.Connection[Any], name: str) -> None:
    from psycopg import sql

    admin.execute("SET statement_timeout = 0")  # dropping must not fail for want of time left
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _name(base: str, suffix: str) -> str:
    """`base` + `suffix`, `base` cut so the whole fits in a PostgreSQL identifier."""
    room = _MAX_NAME - len(suffix.encode())
    cut = base.encode()[:room].decode(errors="ignore")
    return cut + suffix


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _fsync_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(fh.fileno())
    return size, digest.hexdigest()


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
