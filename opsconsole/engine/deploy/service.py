"""`deploy_service`: the entry the facade hands the CLI: find the service, wire the backups feature
in (when the service names a backup target), run the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .model import DeployReport
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
) -> DeployReport:
    """Raises ValueError for a service the configuration does not have; everything else that goes
    wrong is in the report (its outcome is the exit code)."""
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

    return run_deploy(
        spec,
        image,
        workspace,
        strategy=strategy,
        backup=backup if engine is not None else None,
        rollout=rollout,
    )
