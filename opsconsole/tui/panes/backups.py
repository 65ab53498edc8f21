"""Backups: file and PostgreSQL backups, verified by really restoring them.

Taking, verifying and restoring backups is not in this release, so the pane says so and lists what
an operator should copy by hand meanwhile, read from this configuration (no rows that do not
exist). It is focusable so the console's keys keep working on it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..format import safe
from ..handle import ConsoleAccess

if TYPE_CHECKING:
    from opsconsole.engine import Config

EMPTY_TITLE = "Backups: not configured yet"
EMPTY_TEXT = (
    "This release does not take or list backups: opsconsole.yaml has no 'backups:' section, and "
    "opsconsole has made no backup."
)
ABOUT_TEXT = (
    "What this pane will hold: file backups (configuration, flag files and the state database, "
    "copied consistently into a .tar.gz) and PostgreSQL backups (pg_dump), each verified for real "
    "(checksum; for PostgreSQL a restore into a scratch database), with retention and an approved "
    "restore.\n\n"
    "To configure when it lands: targets (files, a PostgreSQL DSN), storage (a local directory or "
    "S3), schedule and before-promotion backups, retention (keep_last, keep_daily, keep_weekly)."
)
SQLITE = "sqlite:///"
_CREDENTIALS = re.compile(r"(://)[^/@]*@")


class BackupsPane(ConsoleAccess, VerticalScroll, can_focus=True):
    DEFAULT_CSS = """
    BackupsPane { padding: 1 2; }
    BackupsPane .empty-title { text-style: bold; padding: 0 0 1 0; }
    """

    def compose(self) -> ComposeResult:
        yield Static(EMPTY_TITLE, classes="empty-title")
        yield Static(EMPTY_TEXT, id="backups-empty", markup=False)
        yield Static(_copy_by_hand(self.ops.engine.config), id="backups-manual")
        yield Static(ABOUT_TEXT, id="backups-about", markup=False)


def _copy_by_hand(config: Config) -> Text:
    """What holds this console's state, from the configuration, so it can be backed up by hand."""
    text = Text("\nMeanwhile, back these up yourself:\n")
    text.append(f"  configuration  {safe(config.path)}\n")
    store = _CREDENTIALS.sub(r"\1", str(config.store))  # never print a password from a DSN
    if store.startswith(SQLITE):
        text.append(f"  state database {safe(store.removeprefix(SQLITE))}\n")
        text.append("    copy it with: sqlite3 FILE '.backup COPY' (cp can miss recent writes)\n")
    else:
        text.append(f"  state store    {safe(store)}\n")
    for name, env in config.environments.items():
        if env.flags is not None:
            text.append(f"  flags {safe(name)}: {safe(env.flags.path)}\n")
    return text
