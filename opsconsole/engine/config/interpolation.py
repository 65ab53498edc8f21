"""`${NAME}` references in configuration strings.

Strings may use `${NAME}` / `${NAME:-default}`: the caller's variables (WORKSPACE), CONFIG_DIR (the
directory of the file being read), then the process environment; `$${` is a literal `${`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# "$${" is a literal "${"; a reference runs to the next "}" (a missing one is reported).
_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)(\}?)")


def interpolate(text: str, lookup: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """Expand `${NAME}` and `${NAME:-default}` (default also when the value is empty, as in a shell).
    Returns the text and the problems found (an undefined name expands to "" and is reported)."""
    problems: list[str] = []

    def expand(m: re.Match[str]) -> str:
        escaped, body, closed = m.group(1), m.group(2), m.group(3)
        if escaped:
            return "${" + body + closed
        if not closed:
            problems.append(f"unclosed '${{{body}' (write ${{NAME}} or ${{NAME:-default}})")
            return m.group(0)
        name, has_default, default = body.partition(":-")
        if not _VAR_NAME.fullmatch(name):
            problems.append(f"bad variable reference '${{{body}}}' (write ${{NAME}} or ${{NAME:-default}})")
            return m.group(0)
        value = lookup(name)
        if value:
            return value
        if has_default:
            return default
        if value is None:
            problems.append(
                f"${{{name}}} is not defined (set it in the environment, or write ${{{name}:-default}})"
            )
        return ""

    return _REFERENCE.sub(expand, text), problems
