"""The one error every backup step raises, with a kind the runner records and the pane shows.

A message never contains a password: callers put it in run records, logs and the screen as is.
"""

from __future__ import annotations

from typing import Final

KINDS: Final = frozenset(
    {
        "unreachable",
        "auth",
        "timeout",
        "disk_full",
        "corrupt",
        "checksum",
        "exists",
        "storage",
        "interrupted",
        "config",
        "failed",
    }
)
"""Every kind a BackupError can carry."""


class BackupError(Exception):
    """A backup, verification or restore step that failed, and why (one line)."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown backup error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        """One of KINDS: what went wrong, for the record and the pane."""
        self.message = message
        """One line for a person; never contains a password."""
