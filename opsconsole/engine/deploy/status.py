"""What the console shows of the Docker services: each service's containers as its engine reports them
now (image, state, health, restarts, age), which colour is live, and the last deploy from the store
(its steps with their times and the rollback image).

Blocking (Docker and store calls, each bounded by a timeout): the console calls these off its event
loop. An engine that does not answer is said in that service's `error`, never raised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .bluegreen import BG_STARTED, BG_SWITCHED
from .canary import CANARY_RUNNING
from .dockertarget import DockerTarget
from .journal import DONE
from .model import LABEL_COLOUR, DeployError

if TYPE_CHECKING:
    from ..core import Engine
    from ..model import Config

STATUS_TIMEOUT = 3.0
"""Per Docker call when the console looks (a deploy waits longer: the service's docker.timeout)."""


@dataclass(frozen=True)
class ContainerRow:
    name: str
    image: str
    state: str
    health: str
    restarts: int
    created: float
    colour: str = ""

    def age(self, now: float) -> str:
        return age_text(now - self.created)


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    host: str
    strategy: str
    containers: tuple[ContainerRow, ...] = ()
    live: str | None = None
    """blue_green: the colour traffic goes to, as far as the console knows."""
    error: str | None = None
    """Docker could not be read (the engine is down, the SDK missing): what and where."""
    last_deploy: dict[str, Any] | None = field(default=None, compare=False)


def age_text(seconds: float) -> str:
    """Coarse on purpose (it is shown on a screen refreshed every few seconds): changes once a minute."""
    if seconds < 60:
        return "<1m"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def _created(text: str) -> float:
    try:
        return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0


def _row(c: Any) -> ContainerRow:
    attrs = c.attrs or {}
    state = attrs.get("State") or {}
    tags = list(getattr(c.image, "tags", []) or []) if c.image is not None else []
    # The reference the container was started from, while its image still carries it: a live v1
    # whose image a later deploy also tagged `:rollback` is shown as v1, not as the rollback.
    started = str(attrs.get("Config", {}).get("Image") or "")
    now_called = tags[0] if tags else (started or str(attrs.get("Image", "")))[:19]
    image = started if started in tags else now_called
    return ContainerRow(
        name=str(c.name),
        image=image,
        state=str(state.get("Status") or c.status),
        health=str((state.get("Health") or {}).get("Status") or "-"),
        restarts=int(attrs.get("RestartCount") or 0),
        created=_created(str(attrs.get("Created") or "")),
        colour=str(c.labels.get(LABEL_COLOUR, "")),
    )


def live_colour(containers: tuple[ContainerRow, ...], last: dict[str, Any] | None) -> str | None:
    """The live colour: the last blue-green deploy's record says it (before its switch the old one,
    from the switch on the new one, back to the old one when it rolled back); without a record, the
    colour of the running containers."""
    if last is not None and last.get("strategy") == "canary" and last.get("phase") == CANARY_RUNNING:
        return f"{last.get('live') or '-'} + canary {last.get('new')}"
    if last is not None and last.get("strategy") in ("blue_green", "canary") and last.get("new"):
        phase, outcome = last.get("phase"), last.get("outcome")
        if phase == BG_STARTED or (phase == DONE and outcome != "ok"):
            return str(last["live"]) if last.get("live") else None
        if phase in (BG_SWITCHED, DONE):
            return str(last["new"])
    running = {c.colour for c in containers if c.state == "running" and c.colour}
    return running.pop() if len(running) == 1 else None


def service_status(engine: Engine, timeout: float = STATUS_TIMEOUT) -> list[ServiceStatus]:
    """Every configured service, in name order (blocking: Docker, then the store)."""
    from ..store import StoreError

    lasts: dict[str, dict[str, Any]] = {}
    try:
        with engine.store.read() as tx:
            for name in engine.config.services:
                found = tx.list_deploys(name, limit=1)
                if found:
                    lasts[name] = found[0]
    except StoreError:
        pass  # the containers are still worth showing
    out = []
    targets: dict[str, DockerTarget] = {}
    try:
        for name, spec in sorted(engine.config.services.items()):
            target = targets.get(spec.docker_host or "")
            if target is None:
                target = targets[spec.docker_host or ""] = DockerTarget(spec.docker_host, timeout)
            last = lasts.get(name)
            try:
                containers = tuple(_row(c) for c in target.managed(name))
            except DeployError as exc:
                out.append(ServiceStatus(name, target.host, spec.strategy, error=str(exc), last_deploy=last))
                targets[spec.docker_host or ""] = DockerTarget(spec.docker_host, timeout)  # retry afresh
                continue
            out.append(
                ServiceStatus(
                    name, target.host, spec.strategy, containers, live_colour(containers, last), None, last
                )
            )
    finally:
        for target in targets.values():
            target.close()
    return out


def rollout_deploys(engine: Engine, rollout_id: str) -> list[dict[str, Any]]:
    """The deploys a rollout's phases made, and those that brought the previous version back when it
    was rolled back or aborted (oldest first), from the store."""
    with engine.store.read() as tx:
        found = [
            d
            for d in tx.list_deploys(limit=500)
            if str(d.get("rollout") or d.get("revert_of") or "").startswith(f"{rollout_id}:")
        ]
    return sorted(found, key=lambda d: d.get("started_at") or 0.0)


def deploy_lines(record: dict[str, Any]) -> list[str]:
    """A deploy record as lines: what, where it stands, the rollback image, each step with its time."""
    outcome = record.get("report_outcome") or record.get("outcome") or record.get("phase")
    lines = [
        f"deploy {record.get('id')} of {record.get('image')} to {record.get('service')} "
        f"({record.get('strategy') or '-'}): {outcome}",
        f"  rollback image: {record.get('rollback_image') or 'none (first deploy)'}",
    ]
    if record.get("trigger"):  # a revert: "rollback of ROLLOUT"; its failure starts the rollback image
        lines.insert(1, f"  {record['trigger']}: brings back the version the rollout replaced")
    if record.get("message"):
        lines.append(f"  {record['message']}")
    for s in record.get("steps") or []:
        at = float(s.get("at") or 0.0)
        start = time.strftime("%H:%M:%S", time.gmtime(at - float(s.get("seconds") or 0.0)))
        mark = "ok" if s.get("ok") else "FAILED"
        detail = f" {s['detail']}" if s.get("detail") else ""
        lines.append(f"  {start} {s.get('name')} {mark} {float(s.get('seconds') or 0):.2f}s{detail}")
    return lines


def check_engines(config: Config) -> list[tuple[str, str, str, str, bool, float, str]]:
    """Each Docker engine the services use, reached once (connect and ping, bounded by the first
    service's docker timeout), concurrently: (services, "deploy", "docker", host, ok, ms, error) in
    the shape of sources.check.SourceCheck."""
    from concurrent.futures import ThreadPoolExecutor

    by_host: dict[str, list[str]] = {}
    timeouts: dict[str, float] = {}
    for name, spec in sorted(config.services.items()):
        host = DockerTarget(spec.docker_host).host
        by_host.setdefault(host, []).append(name)
        timeouts.setdefault(host, spec.docker_timeout)

    def one(host: str) -> tuple[str, str, str, str, bool, float, str]:
        target = DockerTarget(host, min(timeouts[host], 10.0))
        started = time.perf_counter()
        error = ""
        try:
            version = target.call("version", lambda: target.client.version())
            where = f"{host} (Docker {version.get('Version', '?')}, API {version.get('ApiVersion', '?')})"
        except DeployError as exc:
            error, where = str(exc), host
        finally:
            target.close()
        elapsed = (time.perf_counter() - started) * 1000
        return f"services:{','.join(by_host[host])}", "deploy", "docker", where, not error, elapsed, error

    if not by_host:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(by_host)), thread_name_prefix="docker-check") as pool:
        return list(pool.map(one, by_host))
