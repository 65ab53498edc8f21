"""Plain data shared by every engine module.

Nothing here does I/O or imports anything heavier than the standard library: these types cross the
boundary between the pure decision code (rollout.py, gates.py, flags.py), the store and the screens.
Times are POSIX seconds (float) so they serialise and compare without time-zone surprises; durations
are seconds (float).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from .backups.model import BackupTarget
from .deploy.model import ServiceSpec
from .improvements.model import ImprovementSettings

FlagValue = bool | int
"""A stored flag value: a boolean, or a percentage 0..100 for percentage flags."""


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"  # not decidable yet (soak time left, waiting for an approval)
    UNKNOWN = "unknown"  # no data: source unreachable, timed out, or returned nothing usable


class RolloutState(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    ABORTED = "aborted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


ACTIVE_STATES = frozenset(
    {
        RolloutState.PENDING,
        RolloutState.PROGRESSING,
        RolloutState.PAUSED,
        RolloutState.AWAITING_APPROVAL,
        RolloutState.ROLLING_BACK,
    }
)
TERMINAL_STATES = frozenset({RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.ROLLED_BACK})


class Role(IntEnum):
    """Ordered: a higher role may do everything a lower one may."""

    VIEWER = 0
    OPERATOR = 1
    APPROVER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        return cls[text.strip().upper()]


@dataclass(frozen=True)
class Actor:
    """Who did something: the OS user, and where they came from (SSH origin) when known."""

    user: str
    origin: str = "local"

    def to_dict(self) -> dict[str, str]:
        return {"user": self.user, "origin": self.origin}


ENGINE_ACTOR = Actor("engine", "runner")
"""The actor recorded for decisions the runner takes by itself (step advance, automatic rollback)."""


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class GateSpec:
    """One check. Gates must pass for a phase to end; guards are watched all the time.

    Which fields matter depends on `kind`:
      metric    query, source, min / max (absolute) or max_increase (fraction over the baseline
                captured at the first observation of the phase)
      health    url, timeout, retries, expect_status, body_contains
      smoke     command (argv list), timeout
      soak      duration (seconds the phase must have lasted)
      alarms    none_firing (glob patterns over alarm names)
      checklist items (each must be ticked by a named person)
      approval  (decided from the rollout's approvals; normally generated from Phase.approval)
      improvements  min_kept, min_deployed, max_rollback_rate over the improvement queue of
                `source` (an environment; default the phase's), optionally one `tenant`
      backup    target (a `backups:` entry) and max_age: a verified backup of it younger than that
    """

    kind: str
    name: str
    query: str | None = None
    source: str | None = None
    min: float | None = None
    max: float | None = None
    max_increase: float | None = None
    url: str | None = None
    timeout: float = 5.0
    retries: int = 0
    expect_status: int = 200
    body_contains: str | None = None
    command: tuple[str, ...] = ()
    duration: float | None = None
    none_firing: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    on_missing: str = "hold"  # hold | fail | pass
    failure_limit: int = 1
    inconclusive_limit: int | None = None
    escalate_after: float | None = None
    interval: float | None = None
    unit: str = ""  # how to print values: "" | "%" (value is a fraction, printed x100) | "ms" | "s"
    min_kept: int | None = None
    min_deployed: int | None = None
    max_rollback_rate: float | None = None
    tenant: str | None = None
    target: str | None = None
    max_age: float | None = None
    where: str = ""  # "file:line" of the definition, for messages


@dataclass(frozen=True)
class Strategy:
    """How traffic moves inside a phase. The engine drives `canary` (a flag's percentage) and
    `recreate`, `rolling` and `blue_green` with a `service` (a Docker service of the `services:` section, deployed
    at `image`)."""

    kind: str  # canary | blue_green | rolling | recreate
    flag: str | None = None
    steps: tuple[int, ...] = (0, 100)
    step_wait: float = 0.0
    service: str | None = None
    image: str | None = None


@dataclass(frozen=True)
class ApprovalSpec:
    required: bool = False
    role: Role = Role.APPROVER
    distinct_approvers: int = 1


@dataclass(frozen=True)
class Phase:
    name: str
    environment: str
    flags: dict[str, FlagValue] = field(default_factory=dict)
    gates: tuple[GateSpec, ...] = ()
    guards: tuple[GateSpec, ...] = ()
    strategy: Strategy | None = None
    approval: ApprovalSpec = ApprovalSpec()
    improvements: tuple[tuple[str, Any], ...] = ()
    """The improvement queue's rules in this phase's environment while the phase is current
    (`quality_threshold`, `monitoring`, ...: ImprovementSettings field names and values), over the
    environment's own `improvements:` settings: the seed moves them phase by phase."""
    backup_before: str | None = None
    """A `backups:` target backed up (and verified) before the phase starts; the phase is held
    while that backup runs, and stays held if it fails."""

    @property
    def steps(self) -> tuple[int, ...]:
        """Traffic steps of the phase; a phase without a canary has one implicit step."""
        if self.strategy is not None and self.strategy.kind == "canary":
            return self.strategy.steps
        return (100,)


@dataclass(frozen=True)
class Plan:
    name: str
    phases: tuple[Phase, ...]
    description: str = ""
    where: str = ""


@dataclass(frozen=True)
class Targeting:
    """Who gets a flag first, whatever its percentage: users by id, tenants, regions.
    Only the environment variable, the kill switch and an off parent beat it."""

    users: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.users or self.tenants or self.regions)


FLAG_LIFETIMES: dict[str, float | None] = {
    "release": 40 * 86400.0,
    "experiment": 40 * 86400.0,
    "operational": 7 * 86400.0,
    "kill-switch": None,
    "permission": None,
}
"""Expected lifetime per flag kind (Unleash's defaults); None: never stale."""


@dataclass(frozen=True)
class FlagDef:
    """A flag's definition from config/flags.yaml (its values live in the store).

    The stored value is a bool for boolean and variant flags and an int 0..100 for percentage
    flags. A variant flag that is on gives each user one of `variants` by weight (stable per user);
    off, everyone gets the first variant (the control)."""

    name: str
    type: str = "boolean"  # boolean | percentage | variant
    default: FlagValue = False
    description: str = ""
    risk: str = "low"  # low | medium | high
    owner: str = ""
    depends_on: str | None = None
    where: str = ""
    variants: tuple[tuple[str, int], ...] = ()
    """Variant flags: (variant name, weight), weights summing to 100, in file order."""
    targeting: Targeting = Targeting()
    environments: tuple[str, ...] = ()
    """The environments the flag exists in; empty: all of them."""
    env_defaults: tuple[tuple[str, FlagValue], ...] = ()
    """Per-environment defaults (the seed's ENABLE_* settings differ between dev and production)."""
    kind: str = "release"  # a key of FLAG_LIFETIMES
    created: float | None = None
    """When the flag was introduced (config `created: 2026-10-01`), epoch seconds; None: unknown."""

    def default_for(self, environment: str | None) -> FlagValue:
        for env, value in self.env_defaults:
            if env == environment:
                return value
        return self.default

    def in_environment(self, environment: str | None) -> bool:
        return not self.environments or environment is None or environment in self.environments


@dataclass(frozen=True)
class FlagTarget:
    """Where an environment's flags are written: the seed-schema JSON file, and optionally a flagd
    flag file (OpenFeature) and a `.env` file, all rewritten atomically on every change."""

    kind: str  # file
    path: str
    flagd: str | None = None
    dotenv: str | None = None


@dataclass(frozen=True)
class MetricSource:
    kind: str  # scrape | prometheus | cloudwatch
    url: str
    """scrape, prometheus: the URL asked. cloudwatch: the endpoint override ("" for AWS's own)."""
    timeout: float = 2.0
    window: float = 10.0  # seconds of history rates and percentiles are computed over (scrape)
    token_env: str | None = None
    """prometheus: the environment variable holding a bearer token (the token itself is never kept)."""
    basic_auth_env: str | None = None
    """prometheus: the environment variable holding `user:password` for basic auth."""
    region: str | None = None
    """cloudwatch: the AWS region (None: boto3's usual chain, AWS_REGION / AWS_DEFAULT_REGION / config)."""
    period: float = 60.0
    """cloudwatch: the period of each metric's statistic (a query may say its own)."""
    interval: float = 30.0
    """cloudwatch: how often GetMetricData is called (datapoints change once a period anyway)."""


@dataclass(frozen=True)
class CloudWatchAlarms:
    """`alarms: {kind: cloudwatch, ...}` on an environment: its CloudWatch alarms (metric and
    composite), read with DescribeAlarms, feed `alarms` gates and the Metrics & Alarms pane."""

    kind: str = "cloudwatch"

    region: str | None = None
    """None: boto3's usual chain."""
    endpoint: str = ""
    """An endpoint override (a test server, a VPC endpoint); "" for AWS's own."""
    timeout: float = 5.0
    prefix: str = ""
    """Only alarms whose name starts with this (DescribeAlarms' AlarmNamePrefix)."""
    severity: str = "warning"
    """The severity their rows and verdicts carry (CloudWatch alarms have none of their own)."""
    interval: float = 30.0
    """How often DescribeAlarms is called."""


@dataclass(frozen=True)
class MetricPublishing:
    """`publish: {kind: cloudwatch, ...}`: the console's own figures sent with PutMetricData."""

    namespace: str = "OpsConsole"
    region: str | None = None
    endpoint: str = ""
    timeout: float = 5.0
    interval: float = 60.0
    dimensions: tuple[tuple[str, str], ...] = ()
    """Added to every datum (e.g. Console=prod-eu), so two consoles' figures stay apart."""


@dataclass(frozen=True)
class AlarmSource:
    """`alarms: {kind: alertmanager, ...}` on an environment: the alerts of its Alertmanager (the other
    kind, CloudWatchAlarms, is `kind: cloudwatch`)."""

    kind: str  # alertmanager
    url: str
    timeout: float = 2.0
    bearer_token_env: str | None = None
    """Variable holding a bearer token: the token itself is never in config, verdicts or logs."""
    basic_auth_env: str | None = None
    """Variable holding `user:password` for basic auth."""
    matchers: tuple[tuple[str, str], ...] = ()
    """(label, value) pairs an alert must carry to be this environment's (sent as filters)."""


@dataclass(frozen=True)
class Environment:
    name: str
    metrics: MetricSource | None = None
    alarms: AlarmSource | CloudWatchAlarms | None = None
    """Where its alarms come from besides the console's own rules (`alarms:`, one of either kind)."""
    flags: FlagTarget | None = None
    production: bool = False
    theme_accent: str | None = None
    overrides: tuple[tuple[str, str], ...] = ()
    """(variable, value) this environment's services are declared to run with: shown, never exported."""


@dataclass(frozen=True)
class AlarmRule:
    """The console's own threshold alarm: fires when `query` on the environment's metrics is over
    `max` (or under `min`) for `for_` seconds."""

    name: str
    environment: str
    query: str
    max: float | None = None
    min: float | None = None
    for_: float = 0.0
    severity: str = "warning"
    where: str = ""


@dataclass(frozen=True)
class Notification:
    """Where word of an event goes. `url` is the receiver (for telegram: the Bot API's base, no
    token); the telegram bot token is read from the environment variable `token_env` when a message
    is sent, so it is in neither the configuration, the store nor any text the console shows."""

    kind: str  # webhook | slack | telegram
    url: str
    events: tuple[str, ...] = ()
    timeout: float = 2.0
    chat_id: str = ""  # telegram
    token_env: str = ""  # telegram


@dataclass(frozen=True)
class KillSwitchSpec:
    flags_off: tuple[str, ...] = ()
    flags_on: tuple[str, ...] = ("emergency_shutdown",)
    abort_rollouts: bool = True
    pause_improvements: bool = True


@dataclass(frozen=True)
class Config:
    path: str
    store: str = "sqlite:///.opsconsole/state.db"
    store_password_env: str | None = None
    """The environment variable holding the PostgreSQL store's password (else PGPASSWORD or pgpass)."""
    default_role: Role = Role.VIEWER
    users: dict[str, Role] = field(default_factory=dict)
    """Person -> role. With a PostgreSQL store the person is the authenticated login (or the name
    `logins` maps it to); with SQLite, the OS account."""
    logins: dict[str, str] = field(default_factory=dict)
    """PostgreSQL login -> the person's name `users` and the audit log use, where the two differ."""
    environments: dict[str, Environment] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    flags: dict[str, FlagDef] = field(default_factory=dict)
    alarm_rules: tuple[AlarmRule, ...] = ()
    notifications: tuple[Notification, ...] = ()
    kill_switch: KillSwitchSpec = KillSwitchSpec()
    interval: float = 1.0  # runner tick
    kill_key: str = "ctrl+backslash"
    loaded_at: float = 0.0
    """When loading began (epoch seconds): a source file modified since is not what this holds."""
    improvements: dict[str, ImprovementSettings] = field(default_factory=dict)
    """Environment -> its improvement queue's settings; empty without an `improvements:` section."""
    backups: dict[str, BackupTarget] = field(default_factory=dict)
    """Target name -> what it backs up and keeps; empty without a `backups:` section."""
    publish: MetricPublishing | None = None
    """Where the console's own figures go (PutMetricData); None without a `publish:` section."""
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    """Docker services `opsconsole deploy` replaces; empty without a `services:` section."""


# --------------------------------------------------------------------------------------------- runtime


@dataclass(frozen=True)
class Observation:
    """What an adapter saw for one gate, handed to the pure evaluator.

    `value` meaning by kind: metric -> the number; health -> HTTP status; smoke -> exit code;
    soak -> seconds in phase; alarms -> number of matching firing alarms; checklist -> number ticked;
    approval -> number of distinct valid approvers. `error` set means the source gave no usable
    answer (timeout, refused, garbage) and the verdict is decided by `on_missing`.
    """

    value: float | None = None
    error: str | None = None
    source: str = ""
    at: float = 0.0
    detail: str = ""  # health body excerpt, smoke output tail, names of firing alarms, missing items
    counts: tuple[tuple[str, float], ...] = ()
    """improvements: ("deployed", n), ("kept", n), ("rolled_back", n); `value` is the kept count."""
    no_series: bool = False
    """With `error`: the source answered but has nothing for this query yet (no canary traffic, one
    scrape so far). False for a source that failed (timeout, HTTP error, garbage): a canary at 0%
    may step on the first, never on the second."""


@dataclass(frozen=True)
class GateMemory:
    """What the evaluator carries from one check to the next for one gate in one phase."""

    failures: int = 0  # consecutive failing checks
    unknowns: int = 0  # consecutive checks without data
    unknown_since: float | None = None
    baseline: float | None = None
    last_checked: float | None = None


@dataclass(frozen=True)
class GateVerdict:
    gate: str
    kind: str
    status: Verdict
    reason: str
    value: float | None = None
    threshold: str = ""
    source: str = ""
    at: float = 0.0
    failures: int = 0
    failure_limit: int = 1
    breached: bool = False  # failures reached failure_limit (guards roll back on this)
    inconclusive: bool = False  # unknowns reached inconclusive_limit: pause and page
    escalate: bool = False  # unknown for longer than escalate_after: roll back
    no_series: bool = False  # unknown because the source has no series yet, not because it failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "kind": self.kind,
            "status": str(self.status),
            "reason": self.reason,
            "value": self.value,
            "threshold": self.threshold,
            "source": self.source,
            "at": self.at,
            "failures": self.failures,
            "failure_limit": self.failure_limit,
            "breached": self.breached,
            "inconclusive": self.inconclusive,
            "escalate": self.escalate,
            "no_series": self.no_series,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateVerdict:
        return cls(
            gate=d["gate"],
            kind=d["kind"],
            status=Verdict(d["status"]),
            reason=d["reason"],
            value=d.get("value"),
            threshold=d.get("threshold", ""),
            source=d.get("source", ""),
            at=d.get("at", 0.0),
            failures=d.get("failures", 0),
            failure_limit=d.get("failure_limit", 1),
            breached=d.get("breached", False),
            inconclusive=d.get("inconclusive", False),
            escalate=d.get("escalate", False),
            no_series=d.get("no_series", False),
        )


@dataclass(frozen=True)
class ApprovalRecord:
    user: str
    origin: str
    role: str
    reason: str
    at: float
    override: bool = False
    verdicts: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ChecklistTick:
    item: str
    user: str
    at: float


@dataclass(frozen=True)
class Rollout:
    """Where one run of a plan stands. Persisted whole after every decision; `version` is the
    optimistic-concurrency counter so two writers can never both apply a transition."""

    id: str
    plan: str
    state: RolloutState
    started_by: str
    created_at: float
    phase_index: int = 0
    step_index: int = 0
    phase_started_at: float = 0.0
    step_started_at: float = 0.0
    paused_from: RolloutState | None = None
    reason: str = ""  # the last transition's reason, shown as the rollout's "why"
    approvals: tuple[ApprovalRecord, ...] = ()  # for the current phase
    checklist: tuple[ChecklistTick, ...] = ()  # for the current phase
    memory: dict[str, GateMemory] = field(default_factory=dict)  # "gate:<name>" / "guard:<name>"
    verdicts: tuple[GateVerdict, ...] = ()  # latest verdict of every gate and guard of the phase
    flag_restore: dict[str, dict[str, FlagValue]] = field(default_factory=dict)  # env -> flag -> value before
    awaiting_backup: bool = False
    """The current phase has not started: it waits for its `backup_before` backup (taken by the
    runner; held, paused, when it failed). No flag of the phase is written and no gate checked."""
    version: int = 0
    updated_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True)
class FlagRecord:
    """A flag's stored value in one environment."""

    environment: str
    name: str
    value: FlagValue
    updated_at: float
    updated_by: str


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: float
    actor: str
    origin: str
    action: str  # e.g. rollout.start, rollout.transition, approval, kill_switch, flag.set
    target: str  # e.g. "rollout:<id>", "flag:production/<name>", "kill_switch"
    data: dict[str, Any]
    prev_hash: str
    hash: str


# --------------------------------------------------------------------------------------------- schedules


class ScheduleState(StrEnum):
    PENDING = "pending"  # steps left to apply
    DONE = "done"  # every step applied
    CANCELED = "canceled"  # a person canceled it
    STOPPED = "stopped"  # the engine stopped it (kill switch, flag gone); never resumes by itself


@dataclass(frozen=True)
class ScheduleStep:
    """One planned flag change: at `at` (epoch seconds) the stored value becomes `value`."""

    at: float
    value: FlagValue


@dataclass(frozen=True)
class FlagSchedule:
    """Planned changes of one flag in one environment (a single change, or a time-based ramp).
    `next_index` is the first step not applied yet; steps are in time order."""

    id: int
    environment: str
    flag: str
    steps: tuple[ScheduleStep, ...]
    next_index: int
    state: ScheduleState
    created_by: str
    created_origin: str
    reason: str
    created_at: float
    updated_at: float
    ended_reason: str = ""
    """Why it is no longer pending: "all 4 steps applied", the cancel reason, what stopped it."""

    @property
    def active(self) -> bool:
        return self.state is ScheduleState.PENDING

    @property
    def next_step(self) -> ScheduleStep | None:
        if self.state is not ScheduleState.PENDING or self.next_index >= len(self.steps):
            return None
        return self.steps[self.next_index]
