"""The audit log: list it, verify its hash chain."""

from __future__ import annotations

import argparse
import json
import sys

from ..textsafe import visible
from .common import (
    EXIT_OK,
    EXIT_REFUSED,
    _engine,
    _out,
)


def cmd_audit(args: argparse.Namespace) -> int:
    engine = _engine(args, reading=True)
    if args.verify:
        res = engine.verify_audit()
        if res.ok:
            head = res.head or "none (no events)"
            anchored = f", anchored at event {res.anchored}" if res.anchored is not None else ""
            print(f"audit chain intact: {res.checked} events verified, head {head}{anchored}")
            if res.anchored is None and res.checked:
                print(
                    "warning: no audit anchor in the workspace: a cut-off tail would not show",
                    file=sys.stderr,
                )
            return EXIT_OK
        at = f" at event {res.first_broken}" if res.first_broken is not None else ""
        print(visible(f"audit chain BROKEN{at}: {res.problem}"), file=sys.stderr)
        return EXIT_REFUSED
    events = engine.audit_events()
    events = events[-args.limit :] if args.limit else events
    if args.json:
        _out(
            [
                {
                    "seq": e.seq,
                    "at": e.at,
                    "actor": e.actor,
                    "origin": e.origin,
                    "action": e.action,
                    "target": e.target,
                    "data": e.data,
                    "hash": e.hash,
                }
                for e in events
            ]
        )
        return EXIT_OK
    from ..engine import iso

    for e in events:
        print(
            visible(
                f"{e.seq:>5} {iso(e.at)} {e.actor}@{e.origin} {e.action} {e.target} {json.dumps(e.data, default=str)[:160]}"
            )
        )
    return EXIT_OK
