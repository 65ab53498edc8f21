"""How numbers and durations read in verdicts, alarms and panes.

One place so "2.3%" in a gate's reason and in the flags pane are the same string. These run for every
verdict the runner produces, so they avoid regexes and keep to plain string formatting.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_number(value: float) -> str:
    """Up to 4 significant digits; whole numbers without ".0" (however large)."""
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1000:
        # Four significant digits would switch to exponent notation here; nobody reads "1.235e+04 ms".
        return f"{value:.0f}"
    return f"{value:.4g}"


def format_percent(fraction: float) -> str:
    """A fraction as a percentage: one decimal from 0.1% up ("2.3%", "1.0%"), two significant digits
    below it ("0.05%") so a small error rate does not read as zero."""
    if not math.isfinite(fraction):
        return f"{fraction}%"
    pct = fraction * 100
    if pct == 0:
        return "0%"
    size = abs(pct)
    if size >= 1000:
        return f"{pct:.0f}%"
    if size >= 0.1:
        return f"{pct:.1f}%"
    if size >= 1e-4:
        return f"{pct:.2g}%"
    return f"{pct:.1e}%"


def format_duration(seconds: float) -> str:
    """Compact duration with its two largest units: "3m12s", "45s", "2h", "1d4h", "0s", "0.4s"."""
    if not math.isfinite(seconds):
        return f"{seconds}s"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        tenths = round(seconds, 1)
        if tenths == 0:
            return "0s"
        if tenths < 1:
            return f"{tenths:g}s"
    rest = round(seconds)
    for i, (name, size) in enumerate(_UNITS):
        if rest >= size:
            major, rest = divmod(rest, size)
            text = f"{major}{name}"
            if i + 1 < len(_UNITS):
                minor_name, minor_size = _UNITS[i + 1]
                minor = rest // minor_size
                if minor:
                    text += f"{minor}{minor_name}"
            return text
    return "0s"


def format_value(value: float | None, unit: str) -> str:
    """A gate or alarm value as people read it. `unit`: "" plain number, "%" the value is a fraction
    (0.023 -> "2.3%"), "ms" milliseconds, "s" a duration; anything else is appended after a space."""
    if value is None:
        return "n/a"
    if unit == "":
        return format_number(value)
    if unit == "%":
        return format_percent(value)
    if unit == "s":
        return format_duration(value)
    return f"{format_number(value)} {unit}"


def iso_utc(ts: float, timespec: str = "milliseconds") -> str:
    """A Unix time as ISO 8601 UTC with a Z: "2026-03-01T14:00:00.000Z". Every time the engine writes
    (reports, flag files, journals, anchors) and the console shows goes through here."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
