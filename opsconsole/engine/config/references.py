"""What one part of the configuration names from another: environments, flags and metric queries.

A plan names environments and flags defined in the main file; gates and alarm rules name an
environment whose metrics source runs their query. A plan file read on its own cannot know those
names, so the catalog it is checked against may leave them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..aim import SAMPLE, placeholders, substitute
from ..deploy.model import ServiceSpec
from ..model import Environment, FlagDef
from .fields import Fields
from .issues import suggest


@dataclass
class Catalog:
    """What plans are checked against; None means "not known here" (a plan file read on its own)."""

    environments: dict[str, Environment] | None = None
    flags: dict[str, FlagDef] | None = None
    queues: frozenset[str] | None = None
    """Environments with an improvement queue (an `improvements:` section)."""
    backups: frozenset[str] | None = None
    """Names of the `backups:` targets (what backup gates and `backup_before` may name)."""
    services: Mapping[str, ServiceSpec] | None = None
    """The `services:` (what a phase's strategy may deploy, and whether it can: a blue_green phase
    needs the service's switch, a canary its colours' ports)."""


def check_metrics_env(f: Fields, name: str, env: str | None, envs: Mapping[str, Environment] | None) -> None:
    """`env` must exist and have a metrics source (where queries run)."""
    if env is None or envs is None:
        return
    if env not in envs:
        f.issue(name, f"unknown environment '{env}'{suggest(env, envs)}")
    elif envs[env].metrics is None:
        f.issue(name, f"environment '{env}' has no metrics source (add metrics: to it)")


def metrics_kind(envs: Mapping[str, Environment] | None, env: str | None) -> str | None:
    """The kind of `env`'s metrics source (which query language its queries are written in), None
    when not known here."""
    if envs is None or env is None or env not in envs:
        return None
    metrics = envs[env].metrics
    return metrics.kind if metrics is not None else None


def checked_query(
    f: Fields, key: str = "query", kind: str | None = None, *, colours: bool = False, why_not: str = ""
) -> str | None:
    """The `query` entry of `f` (or `key`), its syntax checked by the metrics source that will run it:
    PromQL for a `prometheus` source (Prometheus itself is the judge; only what is surely wrong is
    caught here), the scrape source's small language otherwise.

    `{colour}` and `{port}` are allowed only where `colours` says the query is aimed at a colour (a
    metric check of a blue_green phase with a service); `why_not` says why this one is not. The
    syntax is checked with them replaced, as the source will be asked."""
    query: str | None = f.text(key)
    if query is not None:
        used = placeholders(query)
        if used and not colours:
            names = " and ".join(used)
            f.issue(
                key,
                f"{names} stand{'s' if len(used) == 1 else ''} for a colour of a blue_green deploy: only a "
                "metric check of a phase with strategy: {kind: blue_green, service: ...} may use "
                f"{'it' if len(used) == 1 else 'them'}{f' ({why_not})' if why_not else ''}",
            )
        expr = substitute(query, *SAMPLE) if used else query
        if kind == "prometheus":
            problem = _promql_problem(expr)
        elif kind == "cloudwatch":
            problem = _cloudwatch_problem(expr)
        else:
            problem = _query_problem(expr)
        if problem:
            f.issue(key, f"bad query: {problem}")
    return query


def _query_problem(expr: str) -> str | None:
    """The scrape source's own syntax check; skipped when that module is not there."""
    try:
        from ..sources.query import validate_query
    except ImportError:
        return None
    return validate_query(expr)


def _promql_problem(expr: str) -> str | None:
    from ..sources.prometheus import promql_problem

    return promql_problem(expr)


def _cloudwatch_problem(expr: str) -> str | None:
    from ..sources.cwquery import QuerySyntaxError, parse_query

    try:
        parse_query(expr)
    except QuerySyntaxError as exc:
        return str(exc)
    return None
