"""Placeholder while this pane is being built; replaced in the same change."""

from __future__ import annotations

from textual.widgets import Static


class BackupsPane(Static, can_focus=True):
    pass
