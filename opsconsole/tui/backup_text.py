"""How backup runs and target restorability read on screen, for the Backups pane and its dialogs.

Textual-free (Rich text only), like format.py and improvement_text.py: a pane and a dialog that show
the same run import it from here, and screens never import a pane. Everything that came from the
configuration or the engine's records (target names, reasons, paths, S3 keys) goes through `safe`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

import opsconsole.engine as facade

from .format import ago, plain, safe

if TYPE_CHECKING:
    from opsconsole.engine import BackupRun, RetentionDecision, TargetStatus

S3 = "s3://"

RESTORABILITY_STYLE = {
    "ok": "bold green",
    "stale": "bold yellow",
    "unverified": "yellow",
    "failing": "bold red",
}
"""Restorability -> style, in the status block at the top of the pane."""
RESTORABILITY_MARK = {"ok": "✓", "stale": "!", "unverified": "?", "failing": "✗"}
"""A character per restorability, so the state survives NO_COLOR."""
STATUS_CELL_STYLE = {
    "verified": "on",
    "ok": "",
    "running": "medium",
    "failed": "high",
    "verify_failed": "high",
    "pruned": "muted",
}
"""Run status -> KeyedTable style name."""
STATUS_STYLE = {
    "verified": "green",
    "running": "yellow",
    "failed": "bold red",
    "verify_failed": "bold red",
    "pruned": "dim",
}
"""Run status -> Rich style, in dialogs."""


def size_text(size: int) -> str:
    """ "0 B", "812 B", "12.3 kB", "4.0 MB", "1.2 GB" (decimal units, as `ls -h --si`)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def duration_text(run: BackupRun) -> str:
    took = run.duration
    return "-" if took is None else facade.format_duration(took)


def age_text(run: BackupRun, now: float) -> str:
    """The run's age in the pane's words ("<1m", "3m", "2h5m"): to the minute, so an idle pane
    repaints an age cell at most once a minute and rows drawn at different moments agree."""
    age = now - run.started_at
    return "<1m" if age < 60 else ago(age).removesuffix(" ago")


def verification_text(run: BackupRun) -> str:
    """Whether the stored copy was proven: "restored" (a test restore ran), "sums" (checksums of every
    copy), "FAILED", "not yet" or "-" for a run that left nothing to verify."""
    status = str(run.status)
    if status == "verify_failed":
        return "FAILED"
    if run.verified_at is not None:
        return "restored" if run.restore_tested_at is not None else "sums"
    if status == "ok":
        return "not yet"
    return "-"


def storage_text(run: BackupRun) -> str:
    """Where the copies are: local, s3, local+s3; "-" when nothing was stored (or it was pruned)."""
    if str(run.status) in ("pruned", "failed", "running"):
        return "-"
    s3 = any(loc.startswith(S3) for loc in run.locations)
    local = any(not loc.startswith(S3) for loc in run.locations)
    return "+".join(name for name, has in (("local", local), ("s3", s3)) if has) or "-"


def status_line(status: TargetStatus, running: bool) -> Text:
    """One target's restorability on one line: mark, name, state, why (and the newest run's age)."""
    state = str(status.state)
    line = Text(no_wrap=True, overflow="ellipsis")
    style = RESTORABILITY_STYLE.get(state, "")
    line.append(f"{RESTORABILITY_MARK.get(state, ' ')} ", style=style)
    line.append_text(plain(status.target, "bold"))
    line.append(" ")
    line.append(state.upper(), style=style)
    if running:
        line.append(" · backing up…", style="bold yellow")
    line.append(" · ")
    line.append_text(plain(status.why))
    return line


def run_facts(run: BackupRun) -> Text:
    """The run under the cursor, in full words (two lines, cut at the width)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append_text(plain(run.id, "bold"))
    text.append(" ")
    text.append(str(run.status), style=STATUS_STYLE.get(str(run.status), ""))
    text.append_text(plain(f" · {run.trigger} by {run.actor} · started {_utc(run.started_at)} UTC"))
    text.append("\n")
    facts: list[str] = []
    if run.reason:
        facts.append(run.reason)
    if run.verify_result:
        facts.append(f"verify: {run.verify_result}")
    if run.sha256:
        facts.append(f"sha256 {run.sha256[:12]}…")
    if run.locations:
        facts.append(", ".join(run.locations))
    text.append_text(plain(" · ".join(facts) or "-", "dim"))
    return text


def decision_line(d: RetentionDecision, now: float) -> Text:
    """One retention decision for the prune dialog: what, how old, kept or deleted, why."""
    run = d.run
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append("keep   " if d.keep else "delete ", style="green" if d.keep else "bold red")
    line.append_text(plain(f"{run.id} · {run.status} · {ago(now - run.started_at)} · {size_text(run.size)}"))
    line.append(" · ")
    line.append_text(plain(d.why, "dim"))
    return line


def _utc(ts: float) -> str:
    return safe(facade.iso_utc(ts, "seconds")[:19].replace("T", " "))
