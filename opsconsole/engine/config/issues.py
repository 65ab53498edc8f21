"""What is wrong with a configuration, and where: the issues a load collects and the error it raises.

Every problem is collected rather than raised at once, so one run reports them all; the error is
raised at the end of the load, with the issues in file order.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong with the configuration, and where: `key` is a dotted path such as
    `phases[1].gates[0].max`, `line` is 1-based (None when the problem is the file as a whole)."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{place}: {self.key}: {self.message}" if self.key else f"{place}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; `issues` lists every problem found, in file order."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def raise_if_any(issues: list[ConfigIssue], first_file: str) -> None:
    """Raise ConfigError when there are issues: those of `first_file` first, then each other file in
    the order it was first complained about, each by line."""
    if not issues:
        return
    order: dict[str, int] = {first_file: 0}
    for i in issues:
        order.setdefault(i.file, len(order))
    raise ConfigError(sorted(issues, key=lambda i: (order[i.file], i.line or 0)))


def suggest(word: str, choices: Collection[str]) -> str:
    """ " (did you mean 'x'?)" for a near miss, else the list of what is allowed."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if not choices or len(choices) > 12:  # a list of hundreds of flag names helps nobody
        return ""
    return f" (expected one of: {', '.join(sorted(choices))})"
