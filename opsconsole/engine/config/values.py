"""Settings written as text: durations, canary steps, fractions, names, URLs and paths.

Each parser takes the text as written and raises ValueError with a message that says what it
expected, which the readers report at the value's line. A bare number where a duration is wanted is
an error, not seconds: "30" could mean seconds or minutes, so the file must say which.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from ..redact import redact_url

STEP_PRESETS: dict[str, tuple[int, ...]] = {
    "safe": (0, 5, 10, 25, 50, 75, 100),
    "fast": (0, 25, 50, 100),
    "instant": (0, 100),
}
"""Named canary step lists, from the phase-4 deployer's strategies."""

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""Plan and environment names."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ("d", "h", "m", "s", "ms")


def parse_duration(text: str) -> float:
    """Seconds in `text`: "1500ms", "30s", "5m", "2h", "4d", or a combination largest unit first
    ("1h30m"). A bare number is an error: "30" could mean seconds or minutes, so say which."""
    s = str(text).strip()
    total, pos, last = 0.0, 0, -1
    while s and pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or _UNIT_ORDER.index(m.group(2)) <= last:
            break  # not a number+unit here, or units out of order ("5m1h", "1m1m")
        last = _UNIT_ORDER.index(m.group(2))
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if s and pos == len(s):
        return total
    hint = f" (add a unit: {s}s)" if re.fullmatch(r"\d+(\.\d+)?", s) else ""
    raise ValueError(f"expected a duration like 30s, 5m, 2h, 4d, got {text!r}{hint}")


def positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"must be longer than 0s, got {text!r}")
    return seconds


def parse_steps(value: str | Sequence[int]) -> tuple[int, ...]:
    """Canary steps: a preset name (safe, fast, instant), "0,5,20,100", or a list of ints; each
    0..100 and never decreasing."""
    if isinstance(value, str):
        text = value.strip()
        if text in STEP_PRESETS:
            return STEP_PRESETS[text]
        parts = [p.strip() for p in text.split(",")]
        if not all(re.fullmatch(r"\d+", p) for p in parts):
            raise ValueError(
                f"expected {', '.join(STEP_PRESETS)}, a list like [0, 10, 50, 100] or a string like "
                f'"0,5,20,100", got {value!r}'
            )
        steps = [int(p) for p in parts]
    else:
        steps = list(value)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise ValueError(f"steps must be whole numbers 0..100, got {steps!r}")
    if not steps:
        raise ValueError("needs at least one step")
    for s in steps:
        if not 0 <= s <= 100:
            raise ValueError(f"step {s} is out of range (0..100)")
    for before, after in zip(steps, steps[1:], strict=False):
        if after < before:
            raise ValueError(f"steps must not decrease: {after} comes after {before}")
    return tuple(steps)


def fraction(text: str) -> float:
    """max_increase: "10%" or 0.1, both meaning a tenth over the baseline."""
    s = text.strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise ValueError(f"expected a fraction like 0.1 or a percentage like 10%, got {text!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative, got {text!r}")
    return value


def name_checker(kind: str) -> Callable[[str], str]:
    """A parser for the names of `kind` (plan, ...), which must match NAME."""

    def check(text: str) -> str:
        if not NAME.fullmatch(text):
            raise ValueError(f"{kind} names use letters, digits, '_', '.', '-', got {text!r}")
        return text

    return check


def http_url(text: str) -> str:
    if not re.match(r"https?://[^/\s]+", text):
        raise ValueError(f"expected an http:// or https:// URL, got {redact_url(text)!r}")
    return text


def resolve_path(base: Path, text: str) -> Path:
    """`text` relative to `base`, the directory of the file that names it (not the current
    directory), so a config means the same thing wherever the console starts."""
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base / path
