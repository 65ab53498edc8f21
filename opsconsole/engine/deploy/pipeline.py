"""A whole deploy, as the seed's self-update pipeline: finish an interrupted one, run the tests, run
the build, check the engine and the image, take the backup, then the strategy. Returns the report;
its `outcome` is the exit code (0 ok, 1 tests, 2 build, 3 deploy failed, 4 rolled back).

A revert (a stopped rollout's previous version brought back, deploy/revert.py) skips the tests, the
build and the backup: they are about a new image, and a revert brings back one that already ran;
waiting on them (or failing on them) would keep the version being rolled back serving."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import journal as j
from .bluegreen import UNFINISHED as BG_UNFINISHED
from .bluegreen import BlueGreen
from .bluegreen import resume as resume_blue_green
from .canary import Canary
from .checks import Stop, run_command
from .dockertarget import DockerTarget
from .model import (
    STRATEGIES,
    DeployError,
    DeployReport,
    Hooks,
    Outcome,
    Revert,
    ServiceSpec,
    StepResult,
)
from .recreate import Recreate
from .rolling import Rolling

if TYPE_CHECKING:
    from ..store import Store

Backup = Callable[[str, str], tuple[bool, str]]
"""(target, reason) -> (ok, detail): the backups feature, handed in by the engine."""


def secrets_of(spec: ServiceSpec) -> dict[str, str]:
    """The secrets' values from the console's environment; a missing one is an error naming the
    variable (never a value)."""
    missing = [f"{var} (from ${env})" for var, env in spec.secrets.items() if env not in os.environ]
    if missing:
        raise DeployError(
            f"service {spec.name}: secret environment variable(s) not set: {', '.join(missing)}"
        )
    return {var: os.environ[env] for var, env in spec.secrets.items()}


def scrubber(values: list[str]) -> Callable[[str], str]:
    hidden = sorted((v for v in values if len(v) >= 4), key=len, reverse=True)

    def scrub(text: str) -> str:
        for v in hidden:
            text = text.replace(v, "***")
        return text

    return scrub


def run_deploy(
    spec: ServiceSpec,
    image: str,
    workspace: Path,
    *,
    strategy: str | None = None,
    backup: Backup | None = None,
    rollout: str | None = None,
    stop: Stop | None = None,
    store: Store | None = None,
    hooks: Hooks | None = None,
    revert: Revert | None = None,
) -> DeployReport:
    """`rollout`: the rollout and phase (`id:index`) this deploy is for, kept in the journal so a
    restarted runner finds the outcome instead of deploying again. `store`: where the deploy's
    progress is recorded for every console (see journal.Journal). `revert`: this deploy brings back
    what a stopped rollout's deploy replaced (`image` is then the service's `:rollback`)."""
    strategy = strategy or spec.strategy
    ref = spec.reference(image)
    report = DeployReport(spec.name, ref, strategy, started_at=time.time())
    journal = j.Journal(workspace, spec.name, store)
    journal.report = report
    target = DockerTarget(spec.docker_host, spec.docker_timeout)
    scrub = scrubber([])
    try:
        if strategy not in STRATEGIES and not (strategy == "canary" and rollout):
            raise DeployError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
        _check_colours(spec, strategy)
        with journal.locked():
            env = secrets_of(spec)
            scrub = scrubber(list(env.values()))
            _pipeline(
                spec,
                ref,
                report,
                journal,
                target,
                env,
                scrub,
                backup,
                rollout,
                strategy,
                stop,
                hooks or Hooks(),
                revert,
            )
    except DeployError as exc:
        report.outcome = Outcome.DEPLOY_FAILED
        report.message = scrub(str(exc))
    finally:
        try:
            if target._client is not None:
                report.containers = [c.name for c in target.managed(spec.name) if c.status == "running"]
        except DeployError:
            pass
        target.close()
        report.finished_at = time.time()
        if journal.report is report:  # a resume points the journal at the earlier deploy's data
            _final_record(journal, report)
        if journal.store_error:
            report.message += f" (progress not recorded in the store: {journal.store_error})"
        if journal.lock_note:
            report.message += f" ({journal.lock_note})"
    return report


def _check_colours(spec: ServiceSpec, strategy: str) -> None:
    """What blue_green and canary need of the service, refused before anything is run or touched."""
    colours = spec.blue_green
    if strategy == "blue_green" and colours is None:
        raise DeployError(
            f"service {spec.name}: blue_green needs a blue_green: section (each colour's ports and a "
            f"switch) at {spec.where or 'the service'}; nothing was changed"
        )
    if strategy == "blue_green" and colours is not None and colours.traffic_switch is None:
        raise DeployError(
            f"service {spec.name}: blue_green needs a switch to move traffic, and {colours.where} has "
            "none (its ports alone serve canary phases; add switch: {command: ...} or "
            "{flag: ..., environment: ...}); nothing was changed"
        )
    if strategy == "canary" and colours is None:
        raise DeployError(
            f"service {spec.name}: a canary needs each colour's ports (canary: or blue_green: ports) "
            f"at {spec.where or 'the service'}; nothing was changed"
        )


def _final_record(journal: j.Journal, report: DeployReport) -> None:
    """The deploy's row with its outcome; a deploy that failed before its strategy began (tests,
    build, image, backup) gets a row of its own too."""
    if journal.store is None:
        return
    if not journal.data.get("id"):
        journal.data = {
            **journal.data,
            "id": f"{int(report.started_at)}-{uuid.uuid4().hex[:6]}",
            "image": report.image,
            "phase": j.DONE,
            "outcome": report.outcome.name.lower(),
            "started_at": report.started_at,
        }
    journal.record(final=True)


def _pipeline(
    spec: ServiceSpec,
    ref: str,
    report: DeployReport,
    journal: j.Journal,
    target: DockerTarget,
    env: dict[str, str],
    scrub: Callable[[str], str],
    backup: Backup | None,
    rollout: str | None = None,
    kind: str = "recreate",
    stop: Stop | None = None,
    hooks: Hooks | None = None,
    revert: Revert | None = None,
) -> None:
    kinds = {"rolling": Rolling, "blue_green": BlueGreen, "canary": Canary}
    strategy = kinds.get(kind, Recreate)(spec, target, journal, report, env, scrub)
    if stop is not None:
        strategy.stop = stop
    strategy.hooks = hooks or Hooks()
    strategy.revert = revert
    # Whatever an interrupted deploy of either strategy left is put back on :rollback whole.
    resumer = Recreate(spec, target, journal, report, env, scrub)
    resumer.hooks = strategy.hooks
    resume(resumer, report)
    if revert is not None:
        _revert(spec, ref, report, journal, target, strategy, revert)
        return
    for steps, failed in ((spec.test, Outcome.TEST_FAILED), (spec.build, Outcome.BUILD_FAILED)):
        for step in steps:
            t = time.monotonic()
            ok, detail = run_command(step, {"OPSCONSOLE_SERVICE": spec.name, "OPSCONSOLE_IMAGE": ref})
            report.steps.append(StepResult(step.name, ok, time.monotonic() - t, scrub(detail)))
            if not ok:
                report.outcome = failed
                report.message = (
                    f"{'tests' if failed == Outcome.TEST_FAILED else 'build'} failed: {scrub(detail)}"
                )
                return
    t = time.monotonic()
    new_id = target.image_id(ref)
    if new_id is None:
        raise DeployError(
            f"image {ref} does not exist on the Docker engine at {target.host} (build or pull it first); "
            "nothing was changed"
        )
    report.steps.append(StepResult("image", True, time.monotonic() - t, new_id[:19]))
    if spec.backup is not None:
        if backup is None:
            raise DeployError(
                f"service {spec.name}: backup {spec.backup!r} asked for but no engine to take it"
            )
        t = time.monotonic()
        ok, detail = backup(spec.backup, f"before deploying {ref} to {spec.name}")
        report.steps.append(StepResult("backup", ok, time.monotonic() - t, detail))
        if not ok:
            raise DeployError(f"backup {spec.backup} failed: {detail}; nothing was changed")
    journal.data = {"rollout": rollout} if rollout else {}
    strategy.run(ref, new_id)


def _revert(
    spec: ServiceSpec,
    ref: str,
    report: DeployReport,
    journal: j.Journal,
    target: DockerTarget,
    strategy: Recreate,
    revert: Revert,
) -> None:
    """The strategy, bringing back `revert.restores`: by `ref` (`:rollback`) while that still names it,
    else by its ID (the tag was moved since the rollout's deploy set it)."""
    journal.data = {
        "revert_of": revert.of,
        "trigger": revert.trigger,
        "restores": revert.restores,
        "replaces": revert.replaces,
        "replaces_ref": revert.replaces_ref,
    }
    t = time.monotonic()
    found = target.image_id(ref)
    if found != revert.restores:
        if target.image_id(revert.restores) is None:
            raise DeployError(
                f"the previous version's image {revert.restores[:19]} is gone from the Docker engine at "
                f"{target.host} ({ref} names {found[:19] if found else 'nothing'}); nothing was changed"
            )
        ref = report.image = revert.restores
    report.steps.append(StepResult("image", True, time.monotonic() - t, revert.restores[:19]))
    strategy.run(ref, revert.restores)


def resume(strategy: Recreate, report: DeployReport) -> None:
    """Finish what an interrupted deploy of this service left: roll back when it stopped between
    stopping the old version and verifying the new one."""
    journal = strategy.journal
    journal.report = None  # the earlier deploy's row keeps its own steps
    try:
        _resume(strategy, report)
    finally:
        journal.report = report
        journal.data = {}


def _resume(strategy: Recreate, report: DeployReport) -> None:
    state = strategy.journal.read()
    if state and state.get("phase") in BG_UNFINISHED:
        was = f"deploy {state.get('id')} of {state.get('image')} interrupted at {state.get('phase')}"
        t = time.monotonic()
        bg = BlueGreen(strategy.spec, strategy.target, strategy.journal, report, strategy.env, strategy.scrub)
        bg.hooks = strategy.hooks
        report.resumed = f"{was}: {resume_blue_green(bg, state)}"
        report.steps.append(StepResult("resume", True, time.monotonic() - t, report.resumed))
        return
    if not state or state.get("phase") not in j.UNFINISHED:
        return
    strategy.journal.data = dict(state)
    was = f"deploy {state.get('id')} of {state.get('image')} interrupted at {state.get('phase')}"
    t = time.monotonic()
    saved = report.outcome, report.message
    strategy.rollback(was)
    report.resumed = f"{was}: {report.message}"
    report.steps.append(
        StepResult("resume", report.outcome == Outcome.ROLLED_BACK, time.monotonic() - t, report.resumed)
    )
    if report.outcome == Outcome.DEPLOY_FAILED:
        raise DeployError(report.resumed)
    report.outcome, report.message = saved
