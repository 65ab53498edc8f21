"""Flag evaluations per second in process, on one core (the process is pinned to one CPU).

What is timed is what a service embedding the engine would call per request: `flags.evaluate`
(the console's own answer, Unleash bucketing) and `flags.flagd_evaluate` (what an OpenFeature flagd
consumer gets) on already-resolved flag states, for 10,000 distinct users, each with its deciding
rule and detail text. Boolean: a stored boolean flag. Percentage: a stored 25% flag, so every call
hashes the user (murmur3; flagd's also encodes [flagKey, userId] as CBOR). Also timed: a variant flag
and a percentage flag with targeting lists, and `resolve` (all rules, 10,000 flags) for scale.
Target: >= 200,000/s boolean and >= 100,000/s percentage (Unleash bucketing, the console's own).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from statistics import median
from typing import Any

from common import emit

from opsconsole.engine.flags import EvalContext, evaluate, flagd_evaluate, resolve
from opsconsole.engine.model import FlagDef, Targeting

USERS = 10_000
ROUNDS = 5
TARGET_BOOLEAN = 200_000
TARGET_PERCENTAGE = 100_000

DEFS = {
    "boolean": FlagDef("checkout_enabled", default=True),
    "percentage": FlagDef("phase_4_rollout", type="percentage", default=25),
    "variant": FlagDef(
        "button", type="variant", default=True, variants=(("control", 50), ("short", 25), ("long", 25))
    ),
    "targeted_percentage": FlagDef(
        "targeted",
        type="percentage",
        default=25,
        targeting=Targeting(users=frozenset(f"vip-{i}" for i in range(100)), regions=frozenset({"eu-1"})),
    ),
}


def rate(fn: Callable[..., Any], state: Any, defn: FlagDef, contexts: list[EvalContext]) -> float:
    """Evaluations per second: the median of ROUNDS passes over every user."""
    rates = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for ctx in contexts:
            fn(state, defn, ctx)
        rates.append(len(contexts) / (time.perf_counter() - t0))
    return median(rates)


def main() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    by_name = {d.name: d for d in DEFS.values()}
    states = resolve(by_name, {}, kill=None, environ={})
    contexts = [EvalContext(f"user-{i}", f"tenant-{i % 50}", "us-1") for i in range(USERS)]
    figures: dict[str, Any] = {}
    for label, defn in DEFS.items():
        state = states[defn.name]
        figures[f"{label}_per_s"] = {
            "console": round(rate(evaluate, state, defn, contexts)),
            "flagd": round(rate(flagd_evaluate, state, defn, contexts)),
        }
    many = {
        f"flag_{i}": FlagDef(f"flag_{i}", type="percentage" if i % 3 else "boolean") for i in range(10_000)
    }
    t0 = time.perf_counter()
    resolve(many, {}, kill=None, environ={"FLAG_7": "true"})
    figures["resolve_10000_flags_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    ok = (
        figures["boolean_per_s"]["console"] >= TARGET_BOOLEAN
        and figures["percentage_per_s"]["console"] >= TARGET_PERCENTAGE
    )
    emit(
        "flag_eval",
        target=f">= {TARGET_BOOLEAN:,}/s boolean and >= {TARGET_PERCENTAGE:,}/s percentage on one core",
        ok=ok,
        figures=figures,
        setup={"users": USERS, "rounds": ROUNDS, "cpu": "pinned to one core"},
    )


if __name__ == "__main__":
    main()
