"""The emergency kill switch and its all-clear."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    EXIT_OK,
    EXIT_STORE,
    _engine,
    _out,
)


def cmd_kill(args: argparse.Namespace) -> int:
    """Safe flag files first, from configuration alone; then the store's record, which may wait at
    most a couple of seconds for a busy store before the journal keeps it for later. When the fast
    path (fastkill.py) made the files safe already, `args.safe_files` says what it did."""
    import threading
    import time
    from pathlib import Path

    from ..engine import (
        DEFAULT_WORKSPACE,
        KILL_JOURNAL,
        KILL_RECORD_WAIT,
        Authz,
        KillResult,
        SafeFiles,
        config_path,
        current_actor,
        kill_store_trouble,
        load,
        load_kill_plan,
        make_safe,
        record_kill,
        wait_for_notifications,
    )

    # The kill-switch part of the configuration as the last engine left it, when no file changed
    # since; else the whole configuration (the slow part of a fresh process).
    ws = Path(args.workspace or DEFAULT_WORKSPACE).absolute()
    actor = current_actor()
    premade = getattr(args, "safe_files", None)
    if premade is not None:  # from the cached plan, which also said this user may engage
        loaded = None
        safe = SafeFiles(**premade)
    else:
        cached = load_kill_plan(config_path(args.config, ws), ws)
        if cached is not None:
            (config, every_canary), loaded = cached, None
        else:
            config, every_canary = load(args.config, args.workspace)[0], None
            loaded = config
        ws.mkdir(parents=True, exist_ok=True)
        Authz.from_config(config, read_only=args.read_only).require(actor, "kill_switch.engage")
        safe = make_safe(config, ws, actor, args.reason, time.time(), every_canary)
    outcome: list[Any] = []
    warnings: list[str] = []

    def record() -> None:
        try:
            from ..engine import Engine

            full = loaded if loaded is not None else load(args.config, args.workspace)[0]
            engine = Engine(full, ws, actor, replay=False)
            warnings.extend(engine.journal_warnings)
            outcome.append(record_kill(engine, safe, args.reason))
        except Exception as exc:  # noqa: BLE001 - whatever stops the record, the files are safe
            outcome.append(exc)

    # Opening a store someone holds locked can itself wait; the command does not wait longer than
    # this, because the journal line already holds the event.
    worker = threading.Thread(target=record, daemon=True)
    worker.start()
    worker.join(KILL_RECORD_WAIT + 1.0)
    res = outcome[0] if outcome else TimeoutError(f"the store did not answer in {KILL_RECORD_WAIT + 1:g} s")
    if isinstance(res, Exception):
        res = KillResult(
            safe.at,
            safe.files,
            [],
            False,
            timings_ms={"files": safe.ms},
            error=f"store: {res}" + (f"; {safe.error}" if safe.error else ""),
            journaled=bool(safe.journal_hash),
            store=kill_store_trouble(res),
        )
    _out(
        {
            "engaged": True,
            "recorded": res.recorded,
            "store": res.store,
            "journaled": res.journaled,
            "already_engaged": res.already_engaged,
            "aborted": res.aborted,
            "files": res.files,
            "timings_ms": {k: round(v, 2) for k, v in res.timings_ms.items()},
            "error": res.error,
        }
    )
    wait_for_notifications()
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not res.recorded:
        where = (
            f"kept in {ws / KILL_JOURNAL}; the next engine or command records it"
            if res.journaled
            else "NOT recorded anywhere (the journal could not be written either): record it by hand"
        )
        print(
            f"kill switch engaged, flag files safe; {res.store_note()}: the event is {where}: {res.error}",
            file=sys.stderr,
        )
    return EXIT_OK if res.recorded else EXIT_STORE


def cmd_all_clear(args: argparse.Namespace) -> int:
    from ..engine import wait_for_notifications

    _engine(args).all_clear(args.reason)
    print("all-clear: kill switch released; flag files re-exported from stored values")
    wait_for_notifications()
    return EXIT_OK
