"""How the improvement queue reads on screen: shared by the Improvements pane and its dialogs.

Textual-free, like format.py. Everything an agent wrote (title, description, component, tenant,
metric, evidence) is untrusted: it goes through `visible()` (escape sequences and controls become
visible escapes) and into a Rich `Text` (never parsed as markup), and is cut to a size a screen can
hold, with the cut said, so a 20,000-character description cannot stall a repaint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text

from opsconsole.textsafe import visible

from .format import ago, safe, utc_time

if TYPE_CHECKING:
    from opsconsole.engine import Improvement, ImprovementSettings, QueueMode, Sample

STATUS_CELL_STYLE = {
    "monitoring": "override",
    "deploying": "medium",
    "failed": "high",
    "approved": "on",
    "proposed": "",
    "kept": "muted",
    "rolled_back": "muted",
    "rejected": "off",
}
"""Status -> the KeyedTable style name of its cell (what needs eyes first stands out)."""

STATUS_STYLE = {
    "monitoring": "bold yellow",
    "deploying": "yellow",
    "failed": "bold red",
    "approved": "green",
    "kept": "green",
    "rolled_back": "red",
    "rejected": "dim",
}
"""Status -> Rich style, in the detail screen."""

DESCRIPTION_LIMIT = 8_000
"""Characters of a description shown in the detail screen; the rest is said to be cut."""
LINE_LIMIT = 400
"""Characters of one line of a description: a 20,000-character line is folded, but not all of it."""
FIELD_LIMIT = 300
"""Characters of a one-line field (title, component, metric, evidence line)."""


def mode_text(mode: QueueMode) -> tuple[str, str]:
    """(words, style): observation, autonomous, or autonomous suspended by the kill switch (said
    only where autonomous mode is configured: elsewhere nothing changes for the person reviewing)."""
    if mode.autonomous_suspended and mode.configured_autonomous:
        return "autonomous suspended by the kill switch", "bold red"
    if mode.autonomous:
        return "autonomous", "bold yellow"
    if mode.configured_autonomous:
        return "observation (autonomous configured, its flag is off)", "bold"
    return "observation", "bold"


def agent_text(mode: QueueMode, since: float | None) -> tuple[str, str]:
    """(words, style) for the agent: ok, unreachable since ..., auth refused, never reached."""
    state = mode.agent_state
    if state == "ok":
        return "ok", "green"
    if state == "never":
        return "not contacted yet", "dim"
    if state == "off":
        return "off (enable_self_building is off)", "dim"
    if state == "auth":
        words = "auth refused"
    elif state in ("unreachable", "timeout"):
        words = "unreachable" if state == "unreachable" else "timing out"
    else:
        words = safe(state)
    if since is not None:
        words += f" since {utc_time(since)[11:]} UTC"
    if mode.agent_error:
        words += f": {visible(mode.agent_error, limit=FIELD_LIMIT)}"
    return words, "bold red"


def sync_text(mode: QueueMode, now: float) -> str:
    """ "last sync 3m ago · next in 57m" (never / due)."""
    last = f"last sync {ago(now - mode.last_sync_at)}" if mode.last_sync_at else "never synced"
    if mode.next_sync_at is None:
        return f"{last} · no sync scheduled"
    left = mode.next_sync_at - now
    return f"{last} · next {'due' if left <= 0 else 'in ' + duration(left)}"


def duration(seconds: float) -> str:
    """ "45s", "12m", "1h05m": coarse, so a line that shows it repaints once a minute past a minute."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def score(value: float) -> str:
    return f"{value:.2f}"


def quality_line(item: Improvement, settings: ImprovementSettings | None) -> tuple[str, bool]:
    """("quality 0.82 under the threshold 0.85", False): and whether it passes."""
    q = item.proposal.quality_score
    if settings is None:
        return f"quality {score(q)}", True
    ok = q >= settings.quality_threshold
    word = "meets" if ok else "under"
    return f"quality {score(q)} {word} the threshold {score(settings.quality_threshold)}", ok


def risk_line(item: Improvement, settings: ImprovementSettings | None) -> tuple[str, bool]:
    """("risk 0.12 over the tolerance 0.10", False): and whether it passes."""
    r = item.proposal.risk
    if settings is None:
        return f"risk {score(r)}", True
    ok = r <= settings.risk_tolerance
    word = "within" if ok else "over"
    return f"risk {score(r)} {word} the tolerance {score(settings.risk_tolerance)}", ok


def impact_line(item: Improvement) -> str:
    """ "p95 latency: -20% predicted (lower is better)", on the metric it is judged on."""
    impact = item.proposal.impact
    metric = item.metric or impact.metric or "the environment's default metric"
    change = f"{impact.expected_change * 100:+.0f}%"
    return f"{visible(metric, limit=FIELD_LIMIT)}: {change} predicted ({item.better} is better)"


def description(text: str) -> Text:
    """The full description, escaped, with its own line breaks kept, each line and the whole cut."""
    cut = ""
    if len(text) > DESCRIPTION_LIMIT:
        cut = f"\n… ({len(text) - DESCRIPTION_LIMIT} more characters not shown)"
        text = text[:DESCRIPTION_LIMIT]
    lines = [visible(line, limit=LINE_LIMIT) for line in text.split("\n")]
    return Text("\n".join(lines) + cut, overflow="fold")


def value_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def change_text(baseline: float | None, now: float | None) -> str:
    """ "+12.0%" relative to the baseline; "" when either is unknown or the baseline is 0."""
    if baseline is None or now is None or baseline == 0:
        return ""
    return f"{(now - baseline) / abs(baseline) * 100:+.1f}%"


BLOCKS = " ▁▂▃▄▅▆▇█"


def chart(samples: Sequence[Sample], baseline: float | None, width: int, height: int = 6) -> list[str]:
    """A text chart of the monitored metric: the last `width` samples, oldest on the left, each as
    wide as the room allows (a few samples do not huddle at the left edge), bars rising from the
    bottom, and the baseline drawn as `─` where no bar covers it. A sample without a value is a `·`
    on the bottom row. Lines are exactly `width` characters."""
    width, height = max(1, width), max(2, height)
    shown = list(samples)[-width:]
    repeat = max(1, width // max(1, len(shown)))
    values = [s.value for s in shown if s.value is not None and math.isfinite(s.value)]
    scale = [*values, *([baseline] if baseline is not None else [])]
    if not scale:
        return [" " * width for _ in range(height - 1)] + [("·" * len(shown) * repeat).ljust(width)]
    low, high = min(scale), max(scale)
    if high == low:
        low, high = low - 1, high + 1
    span = high - low
    levels = height * 8

    def level(v: float) -> int:
        return max(1, round((v - low) / span * levels))  # the lowest value still shows

    base_row = None if baseline is None else min(height - 1, int((baseline - low) / span * height))
    rows: list[str] = []
    for row in range(height - 1, -1, -1):  # top first
        line = []
        for s in shown:
            if s.value is None or not math.isfinite(s.value):
                cell = "·" if row == 0 else " "
            else:
                fill = level(s.value) - row * 8
                cell = BLOCKS[max(0, min(8, fill))]
            if cell == " " and row == base_row:
                cell = "─"
            line.append(cell * repeat)
        text = "".join(line)
        pad = "─" if row == base_row else " "
        rows.append(text + pad * (width - len(text)))
    return rows


def time_left(item: Improvement, now: float) -> str:
    if item.monitor_until is None:
        return ""
    left = item.monitor_until - now
    return "monitoring window over" if left <= 0 else f"{duration(left)} left of the monitoring window"
