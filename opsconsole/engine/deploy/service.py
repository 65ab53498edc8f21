"""`deploy_service`: the entry the facade hands the CLI: find the service, wire the backups feature
in (when the service names a backup target), run the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .model import BeforeSwitch, DeployReport, FlagSwitch, Hooks, Outcome, Revert, WatchGuards
from .pipeline import run_deploy

if TYPE_CHECKING:
    from ..core import Engine
    from ..model import Config


def deploy_service(
    config: Config,
    workspace: Path,
    service: str,
    image: str,
    *,
    strategy: str | None = None,
    engine: Engine | None = None,
    rollout: str | None = None,
    before_switch: BeforeSwitch | None = None,
    watch: WatchGuards | None = None,
    revert: Revert | None = None,
) -> DeployReport:
    """Raises ValueError for a service the configuration does not have; everything else that goes
    wrong is in the report (its outcome is the exit code). `revert`: see deploy/revert.py; nothing
    stops it at a safe point (it is the way back to safety, the kill switch's included)."""
    from ..config.issues import suggest

    spec = config.services.get(service)
    if spec is None:
        known = ", ".join(sorted(config.services)) or "none configured"
        raise ValueError(
            f"no service {service!r} in services: ({known}){suggest(service, sorted(config.services))}"
        )

    def backup(target: str, reason: str) -> tuple[bool, str]:
        assert engine is not None
        run = engine.run_backup(target, "manual", reason)
        if str(run.status) != "ok":
            return False, run.reason or str(run.status)
        verified = engine.verify_backup(target, run.id)
        ok = str(verified.status) == "verified"
        return ok, f"{run.id} verified" if ok else (verified.reason or "verification failed")

    def stop() -> str | None:
        """The kill switch stops a deploy at its next safe point; the service stays on (or goes back
        to) its last healthy version. So does its rollout being rolled back or aborted meanwhile (a
        plan phase's deploy): a blue-green deploy still watching its new colour switches back at once
        rather than finishing its keep_old and being reverted after."""
        assert engine is not None
        try:
            state = engine.kill_state()
            if state.engaged:
                return f"the kill switch is engaged ({state.reason})"
            if rollout:
                r = engine.rollout(rollout.rpartition(":")[0])
                if str(r.state) in ("aborted", "rolling_back", "rolled_back"):
                    return f"rollout {r.id} was {str(r.state).replace('_', ' ')} ({r.reason})"
        except Exception:  # noqa: BLE001 - a store that cannot answer now stops nothing
            return None
        return None

    def set_flag(switch: FlagSwitch, on: bool, reason: str) -> None:
        assert engine is not None
        engine.set_flag(switch.environment, switch.flag, on, reason)

    hooks = Hooks(before_switch=before_switch, watch=watch, set_flag=set_flag if engine is not None else None)
    report = run_deploy(
        spec,
        image,
        workspace,
        strategy=strategy,
        backup=backup if engine is not None else None,
        rollout=rollout,
        stop=stop if engine is not None and revert is None else None,
        store=engine.store if engine is not None else None,
        hooks=hooks,
        revert=revert,
    )
    if engine is not None:
        _audit(engine, report, rollout, revert)
    return report


def _audit(engine: Engine, report: DeployReport, rollout: str | None, revert: Revert | None = None) -> None:
    """One audit event per deploy: what, the outcome and why, the rollback image (no environment value)."""
    data = {k: v for k, v in report.to_dict().items() if k not in ("steps", "started_at", "finished_at")}
    data["steps"] = [f"{s.name}: {'ok' if s.ok else 'FAILED'}" for s in report.steps]
    if rollout:
        data["rollout"] = rollout
    if revert is not None:
        data.update(revert_of=revert.of, trigger=revert.trigger)
    from ..model import ENGINE_ACTOR
    from ..store import StoreError
    from ..targets import notify as notifier

    # A deploy from the command line notifies as a rollout would (a plan phase's rollout does that
    # itself): `rollback` when it rolled back or could not, `completed` when it succeeded. A revert
    # follows a rollout's rollback, already notified: it says something only when it failed.
    event = None
    if revert is not None:
        event = "rollback" if report.outcome != Outcome.OK else None
    elif not rollout and report.outcome == Outcome.OK:
        event = "completed"
    elif not rollout and (report.outcome == Outcome.ROLLED_BACK or "ROLLBACK FAILED" in report.message):
        event = "rollback"
    try:
        with engine.store.transaction() as tx:
            now = engine.clock()
            actor = ENGINE_ACTOR if rollout or revert is not None else engine.actor
            tx.append_audit(now, actor, "deploy.run", f"service:{report.service}", data)
            sent = (
                notifier.enqueue(
                    tx,
                    engine.config.notifications,
                    event,
                    f"{'revert' if revert is not None else 'deploy'} of {report.image} to "
                    f"{report.service}: {report.message}",
                    now,
                    service=report.service,
                    exit_code=report.code,
                )
                if event
                else []
            )
    except StoreError as exc:  # the deploy happened: its outcome (the exit code) stands, said not audited
        report.message += f" (not audited: {exc})"
        return
    notifier.deliver_soon(engine.store, sent)
