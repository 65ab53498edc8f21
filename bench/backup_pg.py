"""A PostgreSQL backup with its proof, against the plain tools doing the same work without one.

A throwaway PostgreSQL 15 server on 127.0.0.1 (started like the tests start theirs: pg_ctl through
tests/pg/pg_ctl_unshared, which runs it in a user namespace when we are root) holds a database of
about 100 MB: pgbench's four tables at scale 5 plus a table of incompressible text. Timed, alternating,
ROUNDS times each:
  plain: `pg_dump -Fc` to a file, then CREATE DATABASE, `pg_restore` into it, DROP DATABASE;
  ours:  `postgres.dump` (snapshot, row counts, dump, fsync, sha256) + `postgres.verify` (scratch
         database, restore, row counts compared, drop).
Figure: ratio = median(ours) / median(plain). Target: <= 1.2.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from common import REPO, emit, free_port, temp_dir

from opsconsole.engine.backups import postgres

PG_BIN = Path(os.environ.get("OPSCONSOLE_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_CTL = REPO / "tests" / "pg" / "pg_ctl_unshared"
SCALE = int(os.environ.get("BENCH_PG_SCALE", "5"))
ROUNDS = int(os.environ.get("BENCH_PG_ROUNDS", "3"))
TARGET = 1.2
DB = "bench"


def start_server(root: Path, port: int) -> Path:
    data = root / "data"
    env = {**os.environ, "OPSCONSOLE_PG_BIN": str(PG_BIN), "LC_ALL": "C.UTF-8"}
    subprocess.run(
        [str(PG_CTL), "initdb", "-D", str(data), "-o", "-U postgres --auth=trust -E UTF8"],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
    subprocess.run(
        [str(PG_CTL), "start", "-w", "-D", str(data), "-o", opts, "-l", str(root / "log")],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    return data


def stop_server(data: Path) -> None:
    env = {**os.environ, "OPSCONSOLE_PG_BIN": str(PG_BIN)}
    subprocess.run(
        [str(PG_CTL), "stop", "-D", str(data), "-m", "fast"], capture_output=True, env=env, timeout=120
    )


def build(port: int) -> int:
    with psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(f"CREATE DATABASE {DB}")
    subprocess.run(
        [
            str(PG_BIN / "pgbench"),
            "-i",
            "-q",
            "-s",
            str(SCALE),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            DB,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=DB, autocommit=True) as c:
        c.execute(
            "CREATE TABLE notes AS SELECT g AS id, md5(g::text) || md5((g * 31)::text) AS body"
            " FROM generate_series(1, 150000) g"
        )
        c.execute("VACUUM ANALYZE")
        row = c.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        return int(row[0])


def plain(port: int, out: Path, env: dict[str, str]) -> float:
    archive = out / "plain.dump"
    t0 = time.monotonic()
    conn = f"host=127.0.0.1 port={port} user=postgres"
    subprocess.run(
        [str(PG_BIN / "pg_dump"), "-Fc", "-f", str(archive), "-d", f"{conn} dbname={DB}"], check=True, env=env
    )
    with psycopg.connect(f"{conn} dbname=postgres", autocommit=True) as c:
        c.execute("CREATE DATABASE plain_restore TEMPLATE template0")
        subprocess.run(
            [str(PG_BIN / "pg_restore"), "-d", f"{conn} dbname=plain_restore", str(archive)],
            check=True,
            env=env,
        )
        c.execute("DROP DATABASE plain_restore")
    seconds = time.monotonic() - t0
    archive.unlink()
    return seconds


def ours(port: int, out: Path, env: dict[str, str]) -> tuple[float, float, float, str]:
    dsn = f"postgresql://postgres@127.0.0.1:{port}/{DB}"
    t0 = time.monotonic()
    backup = postgres.dump(dsn, out, password_env=None, environ=env, timeout=600)
    t1 = time.monotonic()
    check = postgres.verify(dsn, backup.path, backup.row_counts, password_env=None, environ=env, timeout=600)
    t2 = time.monotonic()
    assert check.ok, check.reason
    backup.path.unlink()
    return t2 - t0, t1 - t0, t2 - t1, check.reason


def main() -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["OPSCONSOLE_PG_BIN"] = str(PG_BIN)
    with temp_dir("bench-backup-pg-") as root:
        port = free_port()
        data = start_server(root, port)
        try:
            t0 = time.monotonic()
            size = build(port)
            build_s = time.monotonic() - t0
            out = root / "out"
            out.mkdir()
            plain_s: list[float] = []
            ours_s: list[tuple[float, float, float, str]] = []
            for i in range(ROUNDS):
                print(f"round {i + 1}/{ROUNDS}", file=sys.stderr, flush=True)
                if i % 2:
                    ours_s.append(ours(port, out, env))
                    plain_s.append(plain(port, out, env))
                else:
                    plain_s.append(plain(port, out, env))
                    ours_s.append(ours(port, out, env))
        finally:
            stop_server(data)
    plain_med = statistics.median(plain_s)
    ours_med = statistics.median(t for t, *_ in ours_s)
    ratio = ours_med / plain_med
    emit(
        "backup_pg",
        target=f"backup + verification <= {TARGET}x plain pg_dump + pg_restore",
        ok=ratio <= TARGET,
        figures={
            "ratio": round(ratio, 3),
            "ours_s": [round(t, 2) for t, *_ in ours_s],
            "ours_dump_s": [round(d, 2) for _, d, _, _ in ours_s],
            "ours_verify_s": [round(v, 2) for _, _, v, _ in ours_s],
            "plain_s": [round(t, 2) for t in plain_s],
            "database_mb": round(size / 1e6, 1),
            "build_s": round(build_s, 1),
            "verified": ours_s[-1][3],
        },
        setup={"pgbench_scale": SCALE, "rounds": ROUNDS},
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
