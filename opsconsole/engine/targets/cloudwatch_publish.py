"""The console's own figures sent to CloudWatch with PutMetricData (config `publish:`), so the alarms
an operations team already has (rollback rate, improvement failures, an open circuit breaker) can
watch the console too.

The runner kicks the publisher each tick; at most once an interval it reads the figures from the store
(what is there is committed: durable) and sends them, as a task of its own that the tick never awaits,
its CloudWatch call on the AWS threads. So a slow or dead endpoint never delays a tick, the kill
switch or a rollback; a failure is kept in `last_error` and said once on the event bus (a warning),
and the next interval tries again.

Figures, all with unit Count:
- `rollbacks`, `improvements_rolled_back`, `improvement_cycles_failed` (improvements whose deploy
  failed) and `circuit_breaker_opens` (an environment's autonomous improvements suspended or paused):
  how many happened since the previous publish (the first publish after a start counts from the
  start), so CloudWatch's Sum over a period is the number in that period;
- `kill_switch_engaged` (1 or 0) and `approvals_waiting` (rollouts awaiting approval): the state now.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model import MetricPublishing, RolloutState
from ..sources import aws

if TYPE_CHECKING:
    from ..core import Engine

__all__ = ["Figures", "MetricPublisher"]

_COUNTED = ("rollbacks", "improvements_rolled_back", "improvement_cycles_failed", "circuit_breaker_opens")


@dataclass(frozen=True)
class Figures:
    """What the store says now; the counted ones are running totals (the publisher sends deltas)."""

    rollbacks: int
    kill_switch_engaged: int
    approvals_waiting: int
    improvements_rolled_back: int
    improvement_cycles_failed: int
    breakers_open: frozenset[str]


class MetricPublisher:
    def __init__(self, engine: Engine, spec: MetricPublishing) -> None:
        self.engine = engine
        self.spec = spec
        self.shown = aws.where(spec.region, spec.endpoint)
        self.last_error: str | None = None
        self.last_published: dict[str, float] = {}
        """The data of the last PutMetricData that went through (name -> value)."""
        self.published = 0
        self._due_at: float | None = None
        self._before: Figures | None = None
        self._opens = 0
        self._task: asyncio.Task[None] | None = None

    def kick(self, now: float) -> bool:
        """Start a publish when one is due and none is running; never waits for it."""
        if self._task is not None and not self._task.done():
            return False
        if self._due_at is not None and now < self._due_at - 1e-6:
            return False
        self._due_at = now + self.spec.interval
        self._task = asyncio.get_running_loop().create_task(self.publish())
        return True

    async def publish(self) -> None:
        """Read the figures (a store read, in a thread) and send what changed since the last read."""
        try:
            figures = await asyncio.to_thread(read_figures, self.engine)
        except Exception as exc:  # a busy store: the next interval reads again
            self._failed(f"cannot read the figures to publish: {exc}")
            return
        before, self._before = self._before, figures
        if before is None:
            return  # the first read is where counting starts
        self._opens += len(figures.breakers_open - before.breakers_open)
        data = {
            "rollbacks": max(0, figures.rollbacks - before.rollbacks),
            "improvements_rolled_back": max(
                0, figures.improvements_rolled_back - before.improvements_rolled_back
            ),
            "improvement_cycles_failed": max(
                0, figures.improvement_cycles_failed - before.improvement_cycles_failed
            ),
            "circuit_breaker_opens": self._opens,
            "kill_switch_engaged": figures.kill_switch_engaged,
            "approvals_waiting": figures.approvals_waiting,
        }
        try:
            await aws.call(lambda: self._put(data), 2 * self.spec.timeout + 1.0, self.shown)
        except aws.AwsFailed as exc:
            # Counted figures not sent are sent with the next publish rather than lost.
            self._opens = data["circuit_breaker_opens"]
            self._before = Figures(
                before.rollbacks,
                figures.kill_switch_engaged,
                figures.approvals_waiting,
                before.improvements_rolled_back,
                before.improvement_cycles_failed,
                figures.breakers_open,
            )
            self._failed(f"publishing to {self.shown} failed: {exc}")
            return
        self._opens = 0
        self.published += 1
        self.last_published = {k: float(v) for k, v in data.items()}
        if self.last_error is not None:
            self.engine.bus.publish("warning", message=f"publishing to {self.shown} works again")
        self.last_error = None

    def _failed(self, message: str) -> None:
        if self.last_error is None:
            self.engine.bus.publish("warning", message=message)
        self.last_error = message

    def _put(self, data: dict[str, int]) -> None:
        client = aws.client("cloudwatch", self.spec.region, self.spec.endpoint, self.spec.timeout, attempts=2)
        dims = [{"Name": k, "Value": v} for k, v in self.spec.dimensions]
        metric_data: list[dict[str, Any]] = []
        for name, value in data.items():
            datum: dict[str, Any] = {"MetricName": name, "Value": float(value), "Unit": "Count"}
            if dims:
                datum["Dimensions"] = dims
            metric_data.append(datum)
        client.put_metric_data(Namespace=self.spec.namespace, MetricData=metric_data)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @staticmethod
    async def check(spec: MetricPublishing) -> None:
        """Reach the endpoint with the credentials (a read of the namespace: a check writes nothing)."""

        def ask() -> None:
            client = aws.client("cloudwatch", spec.region, spec.endpoint, spec.timeout)
            client.list_metrics(Namespace=spec.namespace)

        await aws.call(ask, spec.timeout + 1.0, aws.where(spec.region, spec.endpoint))


def read_figures(engine: Engine) -> Figures:
    """The figures as the store has them (committed state only)."""
    rollouts = engine.rollouts()
    rollbacks = sum(1 for r in rollouts if r.state in (RolloutState.ROLLING_BACK, RolloutState.ROLLED_BACK))
    waiting = sum(1 for r in rollouts if r.state is RolloutState.AWAITING_APPROVAL)
    engaged = 1 if engine.kill_state().engaged else 0
    rolled_back = failed = 0
    open_: set[str] = set()
    if engine.config.improvements:
        stats = engine.improvement_stats()
        rolled_back, failed = stats.rolled_back, stats.failed
        for environment in engine.config.improvements:
            mode = engine.improvement_mode(environment)
            if mode.autonomous_suspended or mode.paused.paused:
                open_.add(environment)
    return Figures(rollbacks, engaged, waiting, rolled_back, failed, frozenset(open_))
