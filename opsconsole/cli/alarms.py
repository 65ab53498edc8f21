"""Alarm commands: list an environment's Alertmanager alerts and silences, silence and unsilence.

Exit codes as everywhere: 0 done, 1 an alarm source unreachable or refusing, 2 bad input,
4 not permitted, 5 store trouble. Labels, annotations and comments are remote text: every line
passes `visible()`, so markup or escape codes in them reach the terminal as plain characters.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..textsafe import visible
from .backups import _age  # the CLI's one way of wording an age ("90s", "5m", "3h", "2d")
from .common import EXIT_OK, EXIT_REFUSED, _engine, _out


def cmd_alarms_list(args: argparse.Namespace) -> int:
    from ..engine import AlarmSourceError

    engine = _engine(args, reading=True)
    envs = [args.env] if args.env else _alarm_envs(engine)
    doc: dict[str, Any] = {}
    failed = False
    for env in envs:
        try:
            alerts = engine.remote_alarms(env)
            silences = [s for s in engine.silences(env) if s.state != "expired"]
        except AlarmSourceError as exc:
            failed = True
            doc[env] = {"error": str(exc)}
            continue
        doc[env] = {
            "alerts": [
                {
                    "name": a.name,
                    "state": a.state,
                    "severity": a.severity,
                    "since": a.since,
                    "reason": a.reason,
                    "labels": dict(a.labels),
                    "annotations": dict(a.annotations),
                    "silenced_by": list(a.silenced_by),
                }
                for a in alerts
            ],
            "silences": [s.doc() for s in silences],
        }
    if args.json:
        _out(doc)
        return EXIT_REFUSED if failed else EXIT_OK
    if not envs:
        print("no alarm sources: no environment has alarms: in its configuration")
    now = engine.clock()
    for env, entry in doc.items():
        if "error" in entry:
            print(visible(f"{env}: unknown: {entry['error']}"))
            continue
        print(visible(f"{env}: {len(entry['alerts'])} alerts, {len(entry['silences'])} silences"))
        for a in entry["alerts"]:
            since = "-" if a["since"] is None else _age(now - a["since"])
            labels = ",".join(f"{k}={v}" for k, v in a["labels"].items() if k != "alertname")
            print(
                visible(
                    f"  {a['state']:<9} {a['severity']:<3} {a['name']:<24} {since:>6}  {a['reason']}  {{{labels}}}"
                )
            )
        for s in entry["silences"]:
            matchers = ",".join(f"{k}={v}" for k, v in s["matchers"].items())
            left = _age(s["ends_at"] - now)
            print(
                visible(
                    f"  silence {s['id']} {s['state']} {left} left by {s['created_by']}: {s['comment']} {{{matchers}}}"
                )
            )
    return EXIT_REFUSED if failed else EXIT_OK


def cmd_alarms_silence(args: argparse.Namespace) -> int:
    from ..engine import parse_duration

    engine = _engine(args)
    matchers = dict(_matcher(m) for m in args.match or ())
    if args.alertname:
        matchers["alertname"] = args.alertname
    duration = parse_duration(args.duration)
    env = _one_env(engine, args.env)
    silence_id = engine.silence_alarms(env, matchers, duration, args.reason)
    if args.json:
        _out({"environment": env, "silence": silence_id, "matchers": matchers, "duration": duration})
    else:
        print(visible(f"silenced {_labels(matchers)} in {env} for {args.duration}: {silence_id}"))
    return EXIT_OK


def cmd_alarms_unsilence(args: argparse.Namespace) -> int:
    engine = _engine(args)
    env = _one_env(engine, args.env)
    engine.expire_silence(env, args.id, args.reason)
    print(visible(f"expired silence {args.id} in {env}"))
    return EXIT_OK


def _alarm_envs(engine: Any) -> list[str]:
    """The environments with alerts to list and silence: Alertmanager's (CloudWatch has no silences)."""
    envs = engine.config.environments.items()
    return sorted(n for n, e in envs if e.alarms is not None and e.alarms.kind == "alertmanager")


def _one_env(engine: Any, env: str | None) -> str:
    if env:
        return env
    envs = _alarm_envs(engine)
    if len(envs) != 1:
        raise ValueError(f"--env is required: alarm sources in {', '.join(envs) or 'no environment'}")
    return envs[0]


def _matcher(text: str) -> tuple[str, str]:
    label, sep, value = text.partition("=")
    if not sep or not label.strip():
        raise ValueError(f"--match takes LABEL=VALUE, got {text!r}")
    return label.strip(), value


def _labels(matchers: dict[str, str]) -> str:
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(matchers.items())) + "}"
