"""`opsconsole sources check`: reach every configured source and target once (ok, latency, error)."""

from __future__ import annotations

import argparse
import sys

from ..textsafe import visible
from .common import EXIT_INPUT, EXIT_OK, EXIT_REFUSED, _out

EXIT_SOURCE_FAILED = EXIT_REFUSED
"""Exit code when a source or target could not be reached (1)."""


def cmd_sources_check(args: argparse.Namespace) -> int:
    from ..engine import check_sources, load, suggest

    cfg, _ = load(args.config, args.workspace)
    try:
        checks = check_sources(cfg, args.env)
    except KeyError:
        print(
            visible(f"unknown environment '{args.env}'{suggest(args.env, sorted(cfg.environments))}"),
            file=sys.stderr,
        )
        return EXIT_INPUT
    ok = all(c.ok for c in checks)
    if args.json:
        _out(
            {
                "ok": ok,
                "checks": [
                    {
                        "environment": c.environment,
                        "role": c.role,
                        "kind": c.kind,
                        "where": c.where,
                        "ok": c.ok,
                        "latency_ms": round(c.latency_ms, 1),
                        "error": c.error or None,
                    }
                    for c in checks
                ],
            }
        )
        return EXIT_OK if ok else EXIT_SOURCE_FAILED
    if not checks:
        print("no sources or targets configured" + (f" for {args.env}" if args.env else ""))
        return EXIT_OK
    width = max(len(c.environment) for c in checks)
    for c in checks:
        status = "ok  " if c.ok else "FAIL"
        line = f"{status} {c.environment:<{width}} {c.role:<7} {c.kind:<10} {c.latency_ms:7.1f} ms  {c.where}"
        print(visible(line))
        if c.error:
            print(visible(f"     {c.error}"))
    failed = sum(1 for c in checks if not c.ok)
    print(f"{len(checks) - failed} of {len(checks)} reachable" if failed else f"all {len(checks)} reachable")
    return EXIT_OK if ok else EXIT_SOURCE_FAILED
