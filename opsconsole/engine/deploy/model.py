"""What a service is (the `services:` section) and what a deploy did (its report), as plain data."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

LABEL_MANAGED = "io.opsconsole.managed"
LABEL_SERVICE = "io.opsconsole.service"
LABEL_DEPLOY = "io.opsconsole.deploy"
LABEL_REPLICA = "io.opsconsole.replica"
LABEL_COLOUR = "io.opsconsole.colour"
ROLLBACK_TAG = "rollback"
STRATEGIES = ("recreate", "rolling", "blue_green")
"""Strategies `opsconsole deploy` drives."""


class Outcome(IntEnum):
    """A deploy's result, numbered as the seed pipeline's exit codes (seed 003)."""

    OK = 0
    TEST_FAILED = 1
    BUILD_FAILED = 2
    DEPLOY_FAILED = 3
    """Nothing was changed (the engine, the image or the backup failed first), or the rollback failed too."""
    ROLLED_BACK = 4
    """The new version failed its health check or smoke test; the previous version runs again."""


@dataclass(frozen=True)
class CommandStep:
    """A command run on the console's host by `sh -c` (a test, a build step, a smoke test)."""

    name: str
    command: str
    timeout: float = 300.0


@dataclass(frozen=True)
class HealthSpec:
    """How a replica is known to be healthy: an HTTP URL (`{port}` is the replica's port) answering
    2xx, or the image's own HEALTHCHECK (`docker: true`). `failure_limit` probes in a row failing, one
    every `interval`, after `start_period`, make it unhealthy."""

    url: str | None = None
    docker: bool = False
    interval: float = 1.0
    timeout: float = 1.0
    failure_limit: int = 3
    start_period: float = 0.0
    max_wait: float = 120.0
    """Bound on the whole wait, whatever the probes say."""


@dataclass(frozen=True)
class FlagSwitch:
    """A blue-green switch by flag: the application reads which colour is live from a boolean flag
    (on: green, off: blue) and the console sets it (audited, flag files written at once)."""

    flag: str
    environment: str


@dataclass(frozen=True)
class BlueGreenSpec:
    """Each colour's ports (host networking), the switch that sends traffic to a colour (a command,
    with env OPSCONSOLE_COLOUR, OPSCONSOLE_PORTS, OPSCONSOLE_UPSTREAMS; or a flag the application
    reads), and how long the old colour is kept, the new one watched, after the switch.

    A canary needs only the ports (its flag moves the traffic): a service only canaries deploy has no
    switch, and the blue_green strategy refuses it before anything is touched."""

    blue: tuple[int, ...]
    green: tuple[int, ...]
    traffic_switch: CommandStep | FlagSwitch | None = None
    keep_old: float = 30.0
    where: str = ""
    """file:line of the section, for the messages that name it."""

    def ports(self, colour: str) -> tuple[int, ...]:
        return self.blue if colour == "blue" else self.green

    @property
    def switch(self) -> CommandStep | FlagSwitch:
        """The switch a blue-green deploy moves traffic with (checked before the deploy starts)."""
        if self.traffic_switch is None:
            raise DeployError(f"{self.where or 'blue_green:'} has no switch: blue_green cannot move traffic")
        return self.traffic_switch


BeforeSwitch = Callable[[str, tuple[int, ...], "str | None"], tuple[bool, str]]
"""(the new colour, its ports, the live colour or None) -> (whether the new colour may take traffic,
what was checked or why not). Blocks until decided (bounded)."""
SetFlag = Callable[[FlagSwitch, bool, str], None]
"""(the switch, value, reason): the engine sets the flag; raises with the reason it could not."""


class GuardWatch(Protocol):
    """Checks running beside a blue-green deploy's `keep_old` watch (in a thread of their own)."""

    def wait(self, timeout: float) -> str | None:
        """Wait up to `timeout` seconds, less when a check fails for good: why it did, or None."""
        ...

    def close(self) -> None:
        """Stop checking (bounded); wait() answers None from now on unless it had failed."""
        ...


WatchGuards = Callable[[str, tuple[int, ...]], "GuardWatch | None"]
"""(the new colour, its ports) -> the phase's guards watching it after the switch, started; None when
there are none."""


@dataclass(frozen=True)
class Revert:
    """A deploy that brings back the version a rollout's phase deploy replaced, once that rollout was
    rolled back or aborted (deploy/revert.py)."""

    of: str
    """The phase deploy's rollout and phase, `id:index` (its journal's `rollout`)."""
    restores: str
    """The image ID the service ran before that deploy (tagged `:rollback` by it): what comes back."""
    replaces: str
    """The image ID that deploy started: what a failed revert starts again (the service is never left
    with nothing when the version it had is still there)."""
    replaces_ref: str
    """`replaces` as that deploy named it (`repository:v2`), for the record."""

    @property
    def rollout(self) -> str:
        return self.of.rpartition(":")[0]

    @property
    def trigger(self) -> str:
        return f"rollback of {self.rollout}"


@dataclass
class Hooks:
    """What a deploy asks of the engine that runs it (None: not available, e.g. no engine)."""

    before_switch: BeforeSwitch | None = None
    watch: WatchGuards | None = None
    set_flag: SetFlag | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str
    """The image repository (`registry.local/checkout`); `deploy --image TAG` picks the tag."""
    replicas: int = 1
    network: str = "host"
    ports: tuple[int, ...] = ()
    """With host networking, one port per replica: replica i gets PORT=ports[i] in its environment."""
    environment: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    """Container variable -> the console host's environment variable holding the value. Values are
    read when a container is created and never stored, logged or shown."""
    labels: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    health: HealthSpec = HealthSpec()
    smoke: CommandStep | None = None
    test: tuple[CommandStep, ...] = ()
    build: tuple[CommandStep, ...] = ()
    backup: str | None = None
    """A target of the `backups:` section, taken (and verified) before anything is stopped."""
    docker_host: str | None = None
    """unix:///path/docker.sock or tcp://host:port; DOCKER_HOST (or the default socket) when unset."""
    docker_timeout: float = 30.0
    stop_timeout: float = 10.0
    strategy: str = "recreate"
    max_unavailable: int = 1
    """rolling: how many replicas are replaced at a time."""
    blue_green: BlueGreenSpec | None = None
    """The colours' ports (and the switch): the service's `blue_green:` section, or its `canary:` one."""
    where: str = ""

    def port(self, replica: int) -> int | None:
        return self.ports[replica] if replica < len(self.ports) else None

    def reference(self, image: str) -> str:
        """`TAG` -> `repository:TAG`; a full reference (with ':' or '/') as given."""
        return image if (":" in image or "/" in image) else f"{self.image}:{image}"

    @property
    def rollback_ref(self) -> str:
        return f"{self.image}:{ROLLBACK_TAG}"


@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float
    detail: str = ""
    at: float = field(default_factory=time.time)
    """When the step ended (POSIX seconds); it began `seconds` before."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "at": round(self.at, 3),
        }


@dataclass
class DeployReport:
    service: str
    image: str
    strategy: str
    outcome: Outcome = Outcome.OK
    message: str = ""
    steps: list[StepResult] = field(default_factory=list)
    previous_image: str | None = None
    """The image ID the service ran before (tagged `:rollback`), None on a first deploy."""
    rollback_image: str | None = None
    containers: list[str] = field(default_factory=list)
    """Names of the service's containers when the deploy ended."""
    started_at: float = 0.0
    finished_at: float = 0.0
    resumed: str | None = None
    """What an earlier, interrupted deploy of this service left, finished before this one started."""
    colour: str | None = None
    """blue_green: the colour taking traffic when the deploy ended (None: none, or another strategy)."""

    @property
    def code(self) -> int:
        return int(self.outcome)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "image": self.image,
            "strategy": self.strategy,
            "outcome": self.outcome.name.lower(),
            "exit_code": self.code,
            "message": self.message,
            "previous_image": self.previous_image,
            "rollback_image": self.rollback_image,
            "containers": self.containers,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(self.finished_at - self.started_at, 3),
            "resumed": self.resumed,
            "colour": self.colour,
            "steps": [s.to_dict() for s in self.steps],
        }


class DeployError(Exception):
    """A deploy step that cannot go on; the message says what and where (never a secret's value)."""
